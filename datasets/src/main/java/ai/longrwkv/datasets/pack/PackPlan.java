package ai.longrwkv.datasets.pack;

import ai.longrwkv.datasets.build.DatasetBuilder;
import ai.longrwkv.datasets.io.IntList;

import java.util.ArrayDeque;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.PriorityQueue;
import java.util.SplittableRandom;
import java.util.TreeMap;

/**
 * Which document pieces go into which sequence, in which order: the packing decided on lengths alone, before any
 * token is read.
 *
 * <p>The rules:
 * <ol>
 * <li>A document longer than the longest sequence length of the mix is cut into pieces of exactly that length plus
 * the remainder, in order. Every other document stays whole in one sequence, unless the next rule needs it.</li>
 * <li>The shorter lengths must be able to get their token share: if the documents short enough for sequences of
 * length L (and shorter) hold fewer tokens than those sequences should get, the shortest longer documents give a
 * piece of exactly L from their start until they do (see {@link #cutForShortLengths}). The longest documents are
 * the last to be cut.</li>
 * <li>Sequences: for each length L of the mix with token share f, round(f * T / L) sequences are planned (T = all
 * tokens).</li>
 * <li>Pieces are placed longest first (ties in seeded random order), each into the sequence with the least free
 * space that still holds it (best-fit decreasing, near-optimal bin packing). When none holds it, a new sequence is
 * opened, of the length whose planned token share is furthest from being reached among the lengths that can hold
 * the piece.</li>
 * <li>Free space left at the end of a sequence is padding: token 0 with loss flag 0. Planned sequences that got no
 * piece are dropped.</li>
 * <li>Sequences are written in seeded random order (unless shuffling is off), and the pieces inside a sequence in
 * seeded random order too, so a sequence does not always start with its longest document.</li>
 * </ol>
 * Every input token lands in exactly one place; the result depends only on the lengths, the mix and the seed.
 */
public record PackPlan(int[] sequenceLength, int[] firstSegment, int[] segmentDocument, int[] segmentOffset,
                       int[] segmentLength, long inputTokens) {

    public int sequences() {
        return sequenceLength.length;
    }

    public int segments() {
        return segmentDocument.length;
    }

    public long outputTokens() {
        long n = 0;
        for (int l : sequenceLength) n += l;
        return n;
    }

    public long paddingTokens() {
        return outputTokens() - inputTokens;
    }

    public static PackPlan plan(int[] documentLengths, LengthMix mix, long seed, boolean shuffle) {
        int longest = mix.longest();
        SplittableRandom rng = new SplittableRandom(seed);

        // 1. pieces
        IntList pieceDoc = new IntList(documentLengths.length + 16), pieceOffset = new IntList(documentLengths.length + 16),
                pieceLength = new IntList(documentLengths.length + 16);
        long total = 0;
        for (int d = 0; d < documentLengths.length; d++) {
            int n = documentLengths[d];
            if (n <= 0) continue;
            total += n;
            for (int off = 0; off < n; off += longest) {
                pieceDoc.add(d);
                pieceOffset.add(off);
                pieceLength.add(Math.min(longest, n - off));
            }
        }
        if (pieceDoc.size() == 0) throw new IllegalArgumentException("nothing to pack: the dataset has no tokens");
        cutForShortLengths(pieceDoc, pieceOffset, pieceLength, mix, total);
        int pieces = pieceDoc.size();

        // 2. order: longest first, ties in seeded random order (the rank is in the low 32 bits of the sort key)
        int[] pieceAtRank = DatasetBuilder.shuffledOrder(pieces, rng.nextLong());
        long[] keys = new long[pieces];
        int[] len = pieceLength.array();
        for (int r = 0; r < pieces; r++) keys[r] = ((long) (longest - len[pieceAtRank[r]]) << 32) | r;
        Arrays.sort(keys);

        // 3. planned sequences
        List<LengthMix.Share> shares = mix.shares();
        double[] targetTokens = new double[shares.size()];
        long[] capacity = new long[shares.size()];
        IntList binLength = new IntList(), binRemaining = new IntList();
        TreeMap<Integer, ArrayDeque<Integer>> binsByFreeSpace = new TreeMap<>();
        for (int j = 0; j < shares.size(); j++) {
            targetTokens[j] = shares.get(j).fraction() * total;
            long planned = Math.round(targetTokens[j] / shares.get(j).length());
            for (long k = 0; k < planned; k++) {
                int bin = newBin(binLength, binRemaining, shares.get(j).length());
                capacity[j] += shares.get(j).length();
                binsByFreeSpace.computeIfAbsent(shares.get(j).length(), x -> new ArrayDeque<>()).addLast(bin);
            }
        }

        // 4. best-fit decreasing
        int[] binOfPiece = new int[pieces];
        for (long key : keys) {
            int piece = pieceAtRank[(int) key];
            int n = len[piece];
            Map.Entry<Integer, ArrayDeque<Integer>> fit = binsByFreeSpace.ceilingEntry(n);
            int bin;
            if (fit != null) {
                bin = fit.getValue().pollFirst();
                if (fit.getValue().isEmpty()) binsByFreeSpace.remove(fit.getKey());
            } else {
                int best = -1;
                for (int j = 0; j < shares.size(); j++) {
                    if (shares.get(j).length() < n) continue;
                    if (best < 0 || targetTokens[j] - capacity[j] > targetTokens[best] - capacity[best]) best = j;
                }
                bin = newBin(binLength, binRemaining, shares.get(best).length());
                capacity[best] += shares.get(best).length();
            }
            int left = binRemaining.get(bin) - n;
            binRemaining.set(bin, left);
            if (left > 0) binsByFreeSpace.computeIfAbsent(left, x -> new ArrayDeque<>()).addLast(bin);
            binOfPiece[piece] = bin;
        }

        // 5. drop empty bins, group pieces by bin (in placement order), shuffle
        int bins = binLength.size();
        int[] piecesInBin = new int[bins];
        for (int p = 0; p < pieces; p++) piecesInBin[binOfPiece[p]]++;
        IntList used = new IntList();
        for (int b = 0; b < bins; b++) if (piecesInBin[b] > 0) used.add(b);
        int[] outputOrder = used.toArray();
        if (shuffle) {
            int[] perm = DatasetBuilder.shuffledOrder(outputOrder.length, rng.nextLong());
            int[] shuffled = new int[outputOrder.length];
            for (int i = 0; i < perm.length; i++) shuffled[i] = outputOrder[perm[i]];
            outputOrder = shuffled;
        }
        int[] firstOfBin = new int[bins + 1];
        for (int b = 0; b < bins; b++) firstOfBin[b + 1] = firstOfBin[b] + piecesInBin[b];
        int[] fill = Arrays.copyOf(firstOfBin, bins);
        int[] byBin = new int[pieces];
        for (long key : keys) {
            int piece = pieceAtRank[(int) key];
            byBin[fill[binOfPiece[piece]]++] = piece;
        }

        int sequences = outputOrder.length;
        int[] sequenceLength = new int[sequences];
        int[] firstSegment = new int[sequences + 1];
        int[] segDoc = new int[pieces], segOffset = new int[pieces], segLength = new int[pieces];
        SplittableRandom withinSequence = rng.split();
        int s = 0;
        for (int i = 0; i < sequences; i++) {
            int bin = outputOrder[i];
            sequenceLength[i] = binLength.get(bin);
            firstSegment[i] = s;
            int from = firstOfBin[bin], count = piecesInBin[bin];
            int[] order = DatasetBuilder.shuffledOrder(count, withinSequence.nextLong());
            for (int k = 0; k < count; k++) {
                int piece = byBin[from + (shuffle ? order[k] : k)];
                segDoc[s] = pieceDoc.get(piece);
                segOffset[s] = pieceOffset.get(piece);
                segLength[s] = len[piece];
                s++;
            }
        }
        firstSegment[sequences] = s;
        return new PackPlan(sequenceLength, firstSegment, segDoc, segOffset, segLength, total);
    }

    /**
     * Makes every share reachable without splitting more than needed: the sequences of length L_j and shorter need
     * sum(f_i * T, i <= j) tokens in pieces no longer than L_j. Where the documents do not have that many, the
     * shortest of the longer pieces give a piece of exactly L_j from their start (the rest stays a piece) until they
     * do. Pieces are cut in order of length, so the longest documents are the last to be cut.
     */
    private static void cutForShortLengths(IntList pieceDoc, IntList pieceOffset, IntList pieceLength, LengthMix mix, long total) {
        List<LengthMix.Share> shares = mix.shares();
        if (shares.size() < 2) return;
        // pieces longer than the current length, shortest first (key: length, then piece index)
        PriorityQueue<Long> longer = new PriorityQueue<>();
        long fitting = 0;
        int firstLength = shares.get(0).length();
        for (int p = 0; p < pieceDoc.size(); p++) {
            if (pieceLength.get(p) <= firstLength) fitting += pieceLength.get(p);
            else longer.add(((long) pieceLength.get(p) << 32) | p);
        }
        double needed = 0;
        for (int j = 0; j + 1 < shares.size(); j++) {
            int length = shares.get(j).length();
            needed += shares.get(j).fraction() * total;
            while (!longer.isEmpty() && (longer.peek() >>> 32) <= length) fitting += longer.poll() >>> 32;
            while (fitting < needed && !longer.isEmpty()) {
                int p = (int) (long) longer.poll();
                pieceDoc.add(pieceDoc.get(p));
                pieceOffset.add(pieceOffset.get(p));
                pieceLength.add(length);
                fitting += length;
                pieceOffset.set(p, pieceOffset.get(p) + length);
                int rest = pieceLength.get(p) - length;
                pieceLength.set(p, rest);
                if (rest <= length) fitting += rest;
                else longer.add(((long) rest << 32) | p);
            }
        }
    }

    private static int newBin(IntList binLength, IntList binRemaining, int length) {
        binLength.add(length);
        binRemaining.add(length);
        return binLength.size() - 1;
    }
}
