package ai.longrwkv.datasets.pack;

import ai.longrwkv.datasets.binidx.BinIdxDataset;
import ai.longrwkv.datasets.binidx.BinIdxFormat;
import ai.longrwkv.datasets.binidx.BinIdxWriter;
import ai.longrwkv.datasets.binidx.DatasetMeta;
import ai.longrwkv.datasets.binidx.TokenDtype;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Packing: every input token exactly once, exact sequence lengths, the requested mix, long documents kept whole. */
class PackTest {
    @TempDir
    Path dir;

    /** Mostly short documents (a long tail up to 40k tokens) as real corpora have, plus a few longer than 64k. */
    private static int[] lengths(int docs, long seed) {
        SplittableRandom rng = new SplittableRandom(seed);
        int[] out = new int[docs];
        for (int i = 0; i < docs; i++) {
            double u = rng.nextDouble();
            out[i] = u < 0.995 ? 1 + (int) Math.min(40_000, Math.exp(rng.nextDouble() * Math.log(40_000))) : 65_536 + rng.nextInt(100_000);
        }
        return out;
    }

    @Test
    void planCoversEveryTokenExactlyOnceWithExactLengthsAndTheMix() {
        int[] docs = lengths(20_000, 7);
        LengthMix mix = LengthMix.parse("4096:0.25,16384:0.25,65536:0.5", 131072);
        assertEquals(65536, mix.longest(), "shares add up to 1: nothing at --seq-len");
        PackPlan plan = PackPlan.plan(docs, mix, 42, true);

        // coverage: for every document, its pieces tile [0, length) exactly once
        long total = Arrays.stream(docs).asLongStream().sum();
        assertEquals(total, plan.inputTokens());
        checkCoverage(docs, plan);
        for (int g = 0; g < plan.segments(); g++) {
            if (docs[plan.segmentDocument()[g]] <= 4096) assertEquals(0, plan.segmentOffset()[g], "short documents are never cut");
        }

        // lengths: each sequence has one of the mix lengths and holds at most that many tokens
        long[] tokensAt = new long[3];
        int[] mixLengths = {4096, 16384, 65536};
        for (int i = 0; i < plan.sequences(); i++) {
            int len = plan.sequenceLength()[i];
            int k = Arrays.binarySearch(mixLengths, len);
            assertTrue(k >= 0, "sequence length " + len + " is in the mix");
            long content = 0;
            for (int g = plan.firstSegment()[i]; g < plan.firstSegment()[i + 1]; g++) content += plan.segmentLength()[g];
            assertTrue(content > 0 && content <= len);
            tokensAt[k] += len;
        }
        long out = plan.outputTokens();
        assertEquals(0.25, (double) tokensAt[0] / out, 0.03, "share of 4096-token sequences");
        assertEquals(0.25, (double) tokensAt[1] / out, 0.03, "share of 16384-token sequences");
        assertEquals(0.50, (double) tokensAt[2] / out, 0.03, "share of 65536-token sequences");
        // most tokens are in documents of 10k-40k here, which leave gaps few documents fit: still little padding
        assertTrue(plan.paddingTokens() < 0.03 * out, "best-fit packing pads little: " + plan.paddingTokens() + " of " + out);
    }

    /** For each document, its pieces tile [0, length) exactly once; returns the number of pieces per document. */
    private static int[] checkCoverage(int[] docs, PackPlan plan) {
        List<List<int[]>> piecesOf = new java.util.ArrayList<>();
        for (int d = 0; d < docs.length; d++) piecesOf.add(new java.util.ArrayList<>());
        for (int g = 0; g < plan.segments(); g++) {
            piecesOf.get(plan.segmentDocument()[g]).add(new int[]{plan.segmentOffset()[g], plan.segmentLength()[g]});
        }
        int[] counts = new int[docs.length];
        for (int d = 0; d < docs.length; d++) {
            List<int[]> p = piecesOf.get(d);
            p.sort(java.util.Comparator.comparingInt(a -> a[0]));
            int pos = 0;
            for (int[] piece : p) {
                assertEquals(pos, piece[0], "document " + d + ": pieces back to back, no gap, no overlap");
                pos += piece[1];
            }
            assertEquals(docs[d], pos, "document " + d + ": every token once");
            counts[d] = p.size();
        }
        return counts;
    }

    @Test
    void whenShortDocumentsSufficeOnlyDocumentsLongerThanTheLongestLengthAreCut() {
        SplittableRandom rng = new SplittableRandom(5);
        int[] docs = new int[30_000];
        for (int i = 0; i < docs.length; i++) {
            docs[i] = i % 1000 == 0 ? 70_000 + rng.nextInt(50_000) : i % 50 == 0 ? 5_000 + rng.nextInt(50_000) : 10 + rng.nextInt(2000);
        }
        PackPlan plan = PackPlan.plan(docs, LengthMix.parse("4096:0.25,16384:0.25", 65536), 1, true);
        int[] pieces = checkCoverage(docs, plan);
        for (int d = 0; d < docs.length; d++) {
            assertEquals(docs[d] <= 65536 ? 1 : (docs[d] + 65535) / 65536, pieces[d], "document " + d + " of " + docs[d] + " tokens");
        }
        long[] tokensAt = new long[3];
        for (int i = 0; i < plan.sequences(); i++) {
            tokensAt[Arrays.binarySearch(new int[]{4096, 16384, 65536}, plan.sequenceLength()[i])] += plan.sequenceLength()[i];
        }
        assertEquals(0.25, (double) tokensAt[0] / plan.outputTokens(), 0.03);
        assertEquals(0.25, (double) tokensAt[1] / plan.outputTokens(), 0.03);
        assertTrue(plan.paddingTokens() < 0.01 * plan.outputTokens(), "padding " + plan.paddingTokens());
    }

    @Test
    void planIsDeterministicForASeed() {
        int[] docs = lengths(3000, 3);
        LengthMix mix = LengthMix.parse("1024:0.5", 8192);
        PackPlan a = PackPlan.plan(docs, mix, 5, true), b = PackPlan.plan(docs, mix, 5, true), c = PackPlan.plan(docs, mix, 6, true);
        assertArrayEquals(a.segmentDocument(), b.segmentDocument());
        assertArrayEquals(a.sequenceLength(), b.sequenceLength());
        assertFalse(Arrays.equals(a.segmentDocument(), c.segmentDocument()), "another seed, another order");
    }

    @Test
    void mixOptionParsing() {
        LengthMix m = LengthMix.parse("4k:0.25,16384:0.25", 65536);
        assertEquals(List.of(new LengthMix.Share(4096, 0.25), new LengthMix.Share(16384, 0.25), new LengthMix.Share(65536, 0.5)), m.shares());
        assertEquals(List.of(new LengthMix.Share(1000, 1.0)), LengthMix.parse(null, 1000).shares());
        assertThrows(IllegalArgumentException.class, () -> LengthMix.parse("4096:0.7,8192:0.7", 8192));
        assertThrows(IllegalArgumentException.class, () -> LengthMix.parse("16384:0.5", 8192));
        assertThrows(IllegalArgumentException.class, () -> LengthMix.parse("4096", 8192));
        assertThrows(IllegalArgumentException.class, () -> LengthMix.parse("4096:x", 8192));
    }

    /** A dataset of documents whose tokens say where they come from: token = 1 + (doc * 7 + position) % 60000, then 0. */
    private Path sourceDataset(int[] lengths) {
        Path prefix = dir.resolve("src");
        try (BinIdxWriter w = new BinIdxWriter(BinIdxFormat.bin(prefix), BinIdxFormat.idx(prefix), BinIdxFormat.mask(prefix), TokenDtype.UINT16)) {
            for (int d = 0; d < lengths.length; d++) {
                int[] t = new int[lengths[d]];
                byte[] f = new byte[lengths[d]];
                for (int p = 0; p + 1 < t.length; p++) {
                    t[p] = 1 + (d * 7 + p) % 60000;
                    f[p] = (byte) ((d + p) % 3 == 0 ? 0 : 1);
                }
                f[t.length - 1] = 1;
                w.add(t, f);
            }
            w.finish();
        }
        return prefix;
    }

    @Test
    void packedDatasetHoldsEveryTokenOnceWithItsFlagAndTheBoundaries() throws IOException {
        int[] lengths = new int[400];
        SplittableRandom rng = new SplittableRandom(11);
        for (int d = 0; d < lengths.length; d++) lengths[d] = 2 + rng.nextInt(rng.nextDouble() < 0.02 ? 5000 : 300);
        Path src = sourceDataset(lengths);
        Path out = dir.resolve("packed");
        Packer.Report report = Packer.pack(src, out, new Packer.Options(2048, LengthMix.parse("512:0.3", 2048), BoundaryMode.RESET, 9, true));
        assertEquals(Arrays.stream(lengths).sum(), report.inputTokens());

        long[] seen = new long[lengths.length];
        try (PackedDataset packed = PackedDataset.open(out); BinIdxDataset source = BinIdxDataset.open(src)) {
            assertEquals(BoundaryMode.RESET, packed.boundaryMode());
            assertEquals(report.sequences(), packed.sequenceCount());
            long padding = 0;
            for (int i = 0; i < packed.sequenceCount(); i++) {
                PackedDataset.Sequence s = packed.sequence(i);
                assertTrue(s.length() == 512 || s.length() == 2048, "length " + s.length());
                for (PackedDataset.Segment g : s.segments()) {
                    int[] expected = new int[g.length()];
                    byte[] expectedFlags = new byte[g.length()];
                    source.read(g.sourceDocument(), g.sourceOffset(), expected, 0, g.length());
                    source.readMask(g.sourceDocument(), g.sourceOffset(), expectedFlags, 0, g.length());
                    assertArrayEquals(expected, Arrays.copyOfRange(s.tokens(), g.start(), g.end()));
                    assertArrayEquals(expectedFlags, Arrays.copyOfRange(s.flags(), g.start(), g.end()));
                    seen[g.sourceDocument()] += g.length();
                }
                for (int p = s.contentLength(); p < s.length(); p++) {
                    assertEquals(0, s.tokens()[p], "padding token");
                    assertEquals(0, s.flags()[p], "padding is not trained");
                    padding++;
                }
                int[] starts = s.documentStarts();
                assertEquals(0, starts[0]);
                assertArrayEquals(Arrays.copyOfRange(starts, 1, starts.length), s.stateResetPositions(), "reset before every later document");
                ai.longrwkv.core.train.TokenSequence train = s.trainingSequence();
                assertEquals(s.length(), train.length());
                assertArrayEquals(s.stateResetPositions(), train.resets(), "the trainer resets the state at later document starts");
                for (int p : train.resets()) assertEquals(0f, train.mask()[p - 1], "no loss across a reset boundary");
            }
            assertEquals(report.paddingTokens(), padding);
        }
        for (int d = 0; d < lengths.length; d++) assertEquals(lengths[d], seen[d], "every token of document " + d + " exactly once");
        assertEquals("reset", DatasetMeta.string(DatasetMeta.read(out), "state_at_document_boundary", null));
    }

    @Test
    void sameSeedGivesTheSameBytes() throws IOException {
        int[] lengths = new int[200];
        for (int d = 0; d < lengths.length; d++) lengths[d] = 3 + (d * 37) % 500;
        Path src = sourceDataset(lengths);
        Packer.Options opts = new Packer.Options(4096, LengthMix.parse("1024:0.5", 4096), BoundaryMode.CARRY, 1, true);
        Packer.pack(src, dir.resolve("a"), opts);
        Packer.pack(src, dir.resolve("b"), opts);
        for (String ext : new String[]{".bin", ".idx", ".mask", ".segments", ".meta.json"}) {
            assertArrayEquals(Files.readAllBytes(dir.resolve("a" + ext)), Files.readAllBytes(dir.resolve("b" + ext)), ext);
        }
        try (PackedDataset p = PackedDataset.open(dir.resolve("a"))) {
            assertEquals(BoundaryMode.CARRY, p.boundaryMode());
            assertEquals(0, p.sequence(0).stateResetPositions().length, "carry: no resets");
        }
    }

    @Test
    void refusesToOverwriteItsInput() {
        Path src = sourceDataset(new int[]{5, 6});
        assertThrows(IllegalArgumentException.class, () -> Packer.pack(src, src,
                new Packer.Options(16, LengthMix.single(16), BoundaryMode.CARRY, 1, true)));
        assertTrue(Files.exists(BinIdxFormat.idx(src)), "the input is untouched");
    }

}
