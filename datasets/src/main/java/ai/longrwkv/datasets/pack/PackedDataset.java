package ai.longrwkv.datasets.pack;

import ai.longrwkv.core.train.TokenSequence;
import ai.longrwkv.datasets.binidx.BinIdxDataset;
import ai.longrwkv.datasets.binidx.BinIdxFormat;
import ai.longrwkv.datasets.binidx.DatasetMeta;
import ai.longrwkv.datasets.io.InputFiles;
import com.google.gson.JsonObject;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * A dataset written by `data pack`: long training sequences of exact lengths. It is a binidx dataset whose items are
 * the sequences (so RWKV-LM can read the tokens too), with the .mask sidecar, plus:
 * <pre>
 * PREFIX.segments   where each document piece sits (little-endian):
 *                   magic "LRWKVSEG" (8 bytes), u64 version = 1, u64 sequence count S, u64 segment count G,
 *                   int64 first_segment[S + 1] (sequence i owns segments first_segment[i] .. first_segment[i+1]-1),
 *                   then G records of 4 x int32: start (position in the sequence), length, source document (item
 *                   of the input dataset), source offset (position in that document; above 0 = a piece of a document
 *                   that was cut because it is longer than the longest sequence).
 *                   Segments are back to back from position 0; after the last one, up to the sequence length, is
 *                   padding (token 0, flag 0).
 * PREFIX.meta.json  "kind": "packed", "state_at_document_boundary": "carry" | "reset" (see {@link BoundaryMode}),
 *                   "seq_len", "mix" (requested), "achieved_mix", "seed", "source", counts.
 * </pre>
 * Training on sequence i: {@link Sequence#trainingSequence} gives the core TokenSequence: the loss at position t
 * counts if flag[t + 1] is 1, and in RESET mode the state goes back to the initial state just before each position
 * in {@link Sequence#stateResetPositions} (TokenSequence.resets).
 */
public final class PackedDataset implements AutoCloseable {
    static final byte[] SEGMENTS_MAGIC = "LRWKVSEG".getBytes(StandardCharsets.US_ASCII);
    static final long SEGMENTS_VERSION = 1;
    static final int SEGMENTS_HEADER_BYTES = 32;

    /** One document piece inside a sequence. */
    public record Segment(int start, int length, int sourceDocument, int sourceOffset) {
        /** Whether this piece continues a document cut at an earlier sequence. */
        public boolean continuesDocument() {
            return sourceOffset > 0;
        }

        public int end() {
            return start + length;
        }
    }

    /** One packed sequence. */
    public record Sequence(int[] tokens, byte[] flags, List<Segment> segments, BoundaryMode boundaryMode) {
        public int length() {
            return tokens.length;
        }

        /** Tokens before the padding. */
        public int contentLength() {
            return segments.isEmpty() ? 0 : segments.get(segments.size() - 1).end();
        }

        /** Positions where a document (or document piece) starts. */
        public int[] documentStarts() {
            return segments.stream().mapToInt(Segment::start).toArray();
        }

        /**
         * Positions before which the trainer resets the state to the initial state: every document start after
         * position 0 in RESET mode, none in CARRY mode.
         */
        public int[] stateResetPositions() {
            if (boundaryMode == BoundaryMode.CARRY) return new int[0];
            return segments.stream().mapToInt(Segment::start).filter(p -> p > 0).toArray();
        }

        /**
         * The sequence for the trainer: next-token targets; the loss at t counts if the flag of token t + 1 is 1
         * (padding never counts). In RESET mode the state resets (TokenSequence.resets) are the later document
         * starts, and the position just before each reset (the previous document's token 0, which would predict
         * the next document's first token from another document's state) does not count either.
         */
        public TokenSequence trainingSequence() {
            TokenSequence plain = BinIdxDataset.toTrainingSequence(tokens, flags);
            int[] resets = stateResetPositions();
            if (resets.length == 0) return plain;
            float[] mask = plain.mask();
            for (int p : resets) mask[p - 1] = 0f;
            return new TokenSequence(plain.tokens(), plain.targets(), mask, resets);
        }
    }

    private final BinIdxDataset data;
    private final long[] firstSegment;
    private final int[] segmentRecords;   // 4 ints per segment
    private final BoundaryMode boundaryMode;
    private final JsonObject meta;

    private PackedDataset(BinIdxDataset data, long[] firstSegment, int[] segmentRecords, BoundaryMode mode, JsonObject meta) {
        this.data = data;
        this.firstSegment = firstSegment;
        this.segmentRecords = segmentRecords;
        this.boundaryMode = mode;
        this.meta = meta;
    }

    public static PackedDataset open(Path prefix) {
        JsonObject meta = DatasetMeta.read(prefix);
        Path metaFile = BinIdxFormat.meta(prefix);
        if (meta == null) throw new IllegalArgumentException(metaFile + " not found: " + prefix + " is not a packed dataset (made by `data pack`)");
        if (!"packed".equals(DatasetMeta.string(meta, "kind", ""))) {
            throw new IllegalArgumentException(metaFile + ": kind is '" + DatasetMeta.string(meta, "kind", "") + "', not 'packed'");
        }
        BoundaryMode mode = BoundaryMode.parse(DatasetMeta.string(meta, "state_at_document_boundary", "?"));
        BinIdxDataset data = BinIdxDataset.open(prefix);
        try {
            Path segFile = BinIdxFormat.segments(prefix);
            InputFiles.require(segFile, "segments", segFile + " not found: the packed dataset " + prefix + " is incomplete");
            long fileBytes = InputFiles.size(segFile);
            if (fileBytes < SEGMENTS_HEADER_BYTES) throw new IllegalArgumentException(segFile + ": too short for a segments header");
            ByteBuffer b = ByteBuffer.wrap(InputFiles.readHead(segFile, SEGMENTS_HEADER_BYTES)).order(ByteOrder.LITTLE_ENDIAN);
            byte[] magic = new byte[8];
            b.get(magic);
            if (!Arrays.equals(magic, SEGMENTS_MAGIC)) throw new IllegalArgumentException(segFile + ": not a segments file (expected magic LRWKVSEG)");
            long version = b.getLong();
            if (version != SEGMENTS_VERSION) throw new IllegalArgumentException(segFile + ": version " + version + ", expected 1");
            long sequences = b.getLong(), segments = b.getLong();
            if (sequences != data.documentCount()) {
                throw new IllegalArgumentException(segFile + " describes " + sequences + " sequences but " + BinIdxFormat.idx(prefix)
                        + " has " + data.documentCount() + ": the files do not belong together");
            }
            // every segment holds at least one token of a sequence, so there are at most as many as tokens
            boolean sane = segments >= 0 && segments <= Math.min(data.tokenCount(), (Integer.MAX_VALUE - 64 - (sequences + 1) * 8) / 16);
            long expected = SEGMENTS_HEADER_BYTES + (sequences + 1) * 8 + segments * 16;
            if (!sane || expected != fileBytes) {
                throw new IllegalArgumentException(segFile + ": header says " + sequences + " sequences and " + segments
                        + " segments (" + (sane ? expected + " bytes" : "more than the dataset's " + data.tokenCount() + " tokens allow")
                        + ") but the file has " + fileBytes + " bytes");
            }
            byte[] bytes = InputFiles.readAtMost(segFile, expected, "segments");
            if (bytes.length != expected) throw new IllegalArgumentException(segFile + " changed while being read");
            b = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN);
            b.position(SEGMENTS_HEADER_BYTES);
            long[] first = new long[(int) sequences + 1];
            b.asLongBuffer().get(first);
            b.position(b.position() + first.length * 8);
            int[] records = new int[(int) segments * 4];
            b.asIntBuffer().get(records);
            if (first[0] != 0 || first[(int) sequences] != segments) {
                throw new IllegalArgumentException(segFile + ": first_segment runs from " + first[0] + " to " + first[(int) sequences]
                        + ", expected 0 to " + segments + " (the segment count)");
            }
            for (int i = 0; i < sequences; i++) {
                if (first[i] < 0 || first[i] > first[i + 1] || first[i + 1] > segments) {
                    throw new IllegalArgumentException(segFile + ": bad first_segment for sequence " + i);
                }
                int pos = 0;
                for (long g = first[i]; g < first[i + 1]; g++) {
                    int start = records[(int) g * 4], length = records[(int) g * 4 + 1];
                    if (start != pos || length <= 0) throw new IllegalArgumentException(segFile + ": segment " + g + " of sequence " + i + " does not follow the previous one");
                    pos += length;
                }
                if (pos > data.documentLength(i)) throw new IllegalArgumentException(segFile + ": sequence " + i + " has more segment tokens than its length");
            }
            return new PackedDataset(data, first, records, mode, meta);
        } catch (RuntimeException e) {
            data.close();
            throw e;
        }
    }

    public int sequenceCount() {
        return data.documentCount();
    }

    public int sequenceLength(int i) {
        return data.documentLength(i);
    }

    public BoundaryMode boundaryMode() {
        return boundaryMode;
    }

    /** The pack's metadata (PREFIX.meta.json). */
    public JsonObject meta() {
        return meta.deepCopy();
    }

    /** The underlying binidx (items = sequences). */
    public BinIdxDataset binIdx() {
        return data;
    }

    public List<Segment> segments(int i) {
        int from = (int) firstSegment[i], to = (int) firstSegment[i + 1];
        List<Segment> out = new ArrayList<>(to - from);
        for (int g = from; g < to; g++) {
            out.add(new Segment(segmentRecords[g * 4], segmentRecords[g * 4 + 1], segmentRecords[g * 4 + 2], segmentRecords[g * 4 + 3]));
        }
        return out;
    }

    public Sequence sequence(int i) {
        return new Sequence(data.document(i), data.mask(i), segments(i), boundaryMode);
    }

    @Override
    public void close() {
        data.close();
    }

    /** Writes a plan's segments file. */
    static void writeSegments(Path file, PackPlan plan) {
        int sequences = plan.sequences(), segments = plan.segments();
        ByteBuffer b = ByteBuffer.allocate(SEGMENTS_HEADER_BYTES + (sequences + 1) * 8 + segments * 16).order(ByteOrder.LITTLE_ENDIAN);
        b.put(SEGMENTS_MAGIC).putLong(SEGMENTS_VERSION).putLong(sequences).putLong(segments);
        for (int i = 0; i <= sequences; i++) b.putLong(plan.firstSegment()[i]);
        for (int i = 0; i < sequences; i++) {
            int pos = 0;
            for (int g = plan.firstSegment()[i]; g < plan.firstSegment()[i + 1]; g++) {
                b.putInt(pos).putInt(plan.segmentLength()[g]).putInt(plan.segmentDocument()[g]).putInt(plan.segmentOffset()[g]);
                pos += plan.segmentLength()[g];
            }
        }
        try {
            Files.write(file, b.array());
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write " + file + ": " + e.getMessage(), e);
        }
    }
}
