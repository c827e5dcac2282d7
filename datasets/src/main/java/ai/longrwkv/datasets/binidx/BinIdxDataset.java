package ai.longrwkv.datasets.binidx;

import ai.longrwkv.core.train.TokenSequence;
import ai.longrwkv.datasets.io.InputFiles;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Arrays;

/**
 * Reads a binidx dataset (PREFIX.bin / PREFIX.idx, see {@link BinIdxFormat}) and its loss-mask sidecar PREFIX.mask
 * if there is one. Each item of the index is one document (for a packed dataset: one sequence). The index is read
 * into memory (12 bytes per item); tokens and flags are read from the files on demand with positional reads, so any
 * number of threads may read at once.
 *
 * <pre>{@code
 * try (BinIdxDataset data = BinIdxDataset.open(Path.of("out/chat"))) {
 *     for (int i = 0; i < data.documentCount(); i++) {
 *         int[] tokens = data.document(i);      // ends with token 0 for documents made by `data build`
 *         byte[] flags = data.mask(i);          // 1 = predicting this token is trained
 *         TokenSequence seq = data.trainingSequence(i);
 *     }
 * }
 * }</pre>
 */
public final class BinIdxDataset implements AutoCloseable {
    private final Path prefix;
    private final TokenDtype dtype;
    private final int[] sizes;
    private final long[] pointers;
    private final long tokenCount;
    private final FileChannel bin;
    private final FileChannel mask;   // null: no sidecar, every token trained

    private BinIdxDataset(Path prefix, TokenDtype dtype, int[] sizes, long[] pointers, long tokenCount, FileChannel bin, FileChannel mask) {
        this.prefix = prefix;
        this.dtype = dtype;
        this.sizes = sizes;
        this.pointers = pointers;
        this.tokenCount = tokenCount;
        this.bin = bin;
        this.mask = mask;
    }

    /**
     * Opens PREFIX.idx, PREFIX.bin and (if present) PREFIX.mask. Files that do not match the format or each other
     * give an IllegalArgumentException naming the file and what is wrong.
     */
    public static BinIdxDataset open(Path prefix) {
        Path idxFile = BinIdxFormat.idx(prefix), binFile = BinIdxFormat.bin(prefix), maskFile = BinIdxFormat.mask(prefix);
        Path cleanPrefix = Path.of(BinIdxFormat.stripExtension(prefix.toString()));
        InputFiles.require(idxFile, "index", "dataset " + cleanPrefix + ": index " + idxFile + " not found"
                + (Files.exists(binFile) ? " (the .bin is there: an interrupted run writes the .idx last, so this dataset is incomplete)" : ""));
        long idxBytes = InputFiles.size(idxFile);
        if (idxBytes < BinIdxFormat.IDX_HEADER_BYTES) {
            throw new IllegalArgumentException(idxFile + ": " + idxBytes + " bytes, too short for a binidx header (" + BinIdxFormat.IDX_HEADER_BYTES + " bytes)");
        }
        ByteBuffer b = ByteBuffer.wrap(InputFiles.readHead(idxFile, BinIdxFormat.IDX_HEADER_BYTES)).order(ByteOrder.LITTLE_ENDIAN);
        byte[] magic = new byte[BinIdxFormat.IDX_MAGIC.length];
        b.get(magic);
        if (!Arrays.equals(magic, BinIdxFormat.IDX_MAGIC)) {
            throw new IllegalArgumentException(idxFile + ": not a binidx index (expected magic MMIDIDX\\x00\\x00 at byte 0)");
        }
        long version = b.getLong();
        if (version != BinIdxFormat.IDX_VERSION) throw new IllegalArgumentException(idxFile + ": index version " + version + ", expected 1");
        int code = b.get() & 0xff;
        TokenDtype dtype = TokenDtype.ofCode(code);
        if (dtype == null) {
            throw new IllegalArgumentException(idxFile + ": dtype code " + code + " does not hold token ids (expected 8 = uint16, 4 = int32 or 1 = uint8)");
        }
        long count = b.getLong();
        long docCount = b.getLong();
        boolean sane = count >= 0 && docCount >= 0 && count <= (Integer.MAX_VALUE - 64) / 12 && docCount <= (Integer.MAX_VALUE - 64) / 8;
        long expected = sane ? BinIdxFormat.IDX_HEADER_BYTES + count * 12 + docCount * 8 : -1;
        if (!sane || expected != idxBytes || expected > Integer.MAX_VALUE - 64) {
            throw new IllegalArgumentException(idxFile + ": header says " + count + " items and " + docCount + " doc_idx entries"
                    + (sane ? " (" + expected + " bytes)" : "") + " but the file has " + idxBytes + " bytes");
        }
        byte[] idx = InputFiles.readAtMost(idxFile, expected, "index");
        if (idx.length != expected) throw new IllegalArgumentException(idxFile + " changed while being read (" + idx.length + " bytes, expected " + expected + ")");
        b = ByteBuffer.wrap(idx).order(ByteOrder.LITTLE_ENDIAN);
        b.position(BinIdxFormat.IDX_HEADER_BYTES);
        int n = (int) count;
        int[] sizes = new int[n];
        long[] pointers = new long[n];
        b.asIntBuffer().get(sizes);
        b.position(b.position() + n * 4);
        b.asLongBuffer().get(pointers);
        b.position(b.position() + n * 8);
        // doc_idx (unused here): Megatron's invariant, 0 first, count last, never decreasing (ours: 0, 1, ..., count)
        long previous = 0;
        for (long d = 0; d < docCount; d++) {
            long v = b.getLong();
            if ((d == 0 && v != 0) || v < previous || v > count || (d == docCount - 1 && v != count)) {
                throw new IllegalArgumentException(idxFile + ": doc_idx[" + d + "] is " + v + ": expected values from 0 to " + count
                        + " (the item count), never decreasing, ending at " + count + " (corrupt index)");
            }
            previous = v;
        }

        FileChannel bin = null, maskChannel = null;
        try {
            InputFiles.require(binFile, "tokens", "dataset " + cleanPrefix + ": " + binFile + " not found");
            bin = FileChannel.open(binFile, StandardOpenOption.READ);
            long binBytes = bin.size();
            long tokens = 0;
            for (int i = 0; i < n; i++) {
                if (sizes[i] < 0) throw new IllegalArgumentException(idxFile + ": item " + i + " has negative size " + sizes[i]);
                // items lie back to back: RWKV-LM and Megatron write pointers[i] = (sizes[0] + ... + sizes[i-1]) * dtype bytes
                long expectedPointer = tokens * dtype.bytes;
                if (pointers[i] != expectedPointer) {
                    throw new IllegalArgumentException(idxFile + ": item " + i + " has pointer " + pointers[i] + " but the sizes before it add up to "
                            + tokens + " " + dtype.numpyName() + " tokens, so it must be " + expectedPointer + " (swapped, misaligned or corrupt index)");
                }
                long end = pointers[i] + (long) sizes[i] * dtype.bytes;
                if (end > binBytes) {
                    throw new IllegalArgumentException(idxFile + ": item " + i + " spans bytes " + pointers[i] + ".." + end
                            + " but " + binFile + " has " + binBytes + " bytes");
                }
                tokens += sizes[i];
            }
            if (tokens * dtype.bytes != binBytes) {
                throw new IllegalArgumentException(binFile + " has " + binBytes + " bytes but " + idxFile + " describes " + tokens
                        + " " + dtype.numpyName() + " tokens (" + tokens * dtype.bytes + " bytes): the two files do not belong together");
            }
            if (InputFiles.present(maskFile, "loss mask")) {
                maskChannel = FileChannel.open(maskFile, StandardOpenOption.READ);
                checkMaskHeader(maskFile, maskChannel, tokens);
            }
            return new BinIdxDataset(cleanPrefix, dtype, sizes, pointers, tokens, bin, maskChannel);
        } catch (NoSuchFileException e) {
            closeQuietly(bin);
            throw new IllegalArgumentException("dataset " + cleanPrefix + ": " + binFile + " not found");
        } catch (IOException e) {
            closeQuietly(bin);
            closeQuietly(maskChannel);
            throw new UncheckedIOException("cannot read dataset " + cleanPrefix + ": " + e.getMessage(), e);
        } catch (RuntimeException e) {
            closeQuietly(bin);
            closeQuietly(maskChannel);
            throw e;
        }
    }

    private static void checkMaskHeader(Path maskFile, FileChannel ch, long tokens) throws IOException {
        ByteBuffer h = ByteBuffer.allocate(BinIdxFormat.MASK_HEADER_BYTES).order(ByteOrder.LITTLE_ENDIAN);
        while (h.hasRemaining() && ch.read(h, h.position()) > 0) { }
        if (h.hasRemaining()) throw new IllegalArgumentException(maskFile + ": too short for a mask header");
        h.flip();
        byte[] magic = new byte[BinIdxFormat.MASK_MAGIC.length];
        h.get(magic);
        if (!Arrays.equals(magic, BinIdxFormat.MASK_MAGIC)) throw new IllegalArgumentException(maskFile + ": not a loss-mask file (expected magic LRWKVMSK)");
        long version = h.getLong();
        if (version != BinIdxFormat.MASK_VERSION) throw new IllegalArgumentException(maskFile + ": mask version " + version + ", expected 1");
        long count = h.getLong();
        if (count != tokens || ch.size() != BinIdxFormat.MASK_HEADER_BYTES + tokens) {
            throw new IllegalArgumentException(maskFile + " holds " + count + " flags (" + ch.size() + " bytes) but the dataset has "
                    + tokens + " tokens: the files do not belong together");
        }
    }

    public Path prefix() {
        return prefix;
    }

    public TokenDtype dtype() {
        return dtype;
    }

    /** Items in the index: documents, or sequences for a packed dataset. */
    public int documentCount() {
        return sizes.length;
    }

    public long tokenCount() {
        return tokenCount;
    }

    public int documentLength(int doc) {
        return sizes[checkIndex(doc)];
    }

    /** Position of the document's first token in the flat token stream. */
    public long documentStart(int doc) {
        return pointers[checkIndex(doc)] / dtype.bytes;
    }

    /** Whether there is a PREFIX.mask sidecar; without one every token counts as trained. */
    public boolean hasMask() {
        return mask != null;
    }

    public int[] document(int doc) {
        int[] out = new int[documentLength(doc)];
        read(doc, 0, out, 0, out.length);
        return out;
    }

    /** Tokens [offset, offset + length) of a document into out[outOffset, ...). */
    public void read(int doc, int offset, int[] out, int outOffset, int length) {
        checkRange(doc, offset, length);
        readTokens(pointers[doc] / dtype.bytes + offset, out, outOffset, length);
    }

    /** Tokens of the flat stream (all documents back to back, as RWKV-LM samples its windows) into out. */
    public void readTokens(long start, int[] out, int outOffset, int length) {
        if (start < 0 || length < 0 || start + length > tokenCount) {
            throw new IndexOutOfBoundsException("tokens [" + start + ", " + (start + length) + ") of " + tokenCount);
        }
        ByteBuffer buf = ByteBuffer.allocate(length * dtype.bytes).order(ByteOrder.LITTLE_ENDIAN);
        readFully(bin, buf, start * dtype.bytes, "bin");
        buf.flip();
        switch (dtype) {
            case UINT16 -> {
                for (int i = 0; i < length; i++) out[outOffset + i] = buf.getShort() & 0xffff;
            }
            case INT32 -> buf.asIntBuffer().get(out, outOffset, length);
            case UINT8 -> {
                for (int i = 0; i < length; i++) out[outOffset + i] = buf.get() & 0xff;
            }
        }
    }

    /**
     * The position in the flat stream of the first token id >= limit (or negative), or -1 when every token is a valid
     * id below limit: one pass over the .bin in blocks, so that training can refuse data tokenized for another model
     * before the first step instead of at whichever step first samples the bad token.
     */
    public long firstTokenOutside(int limit) {
        int block = 1 << 20;
        int[] buf = new int[block];
        for (long start = 0; start < tokenCount; start += block) {
            int n = (int) Math.min(block, tokenCount - start);
            readTokens(start, buf, 0, n);
            for (int i = 0; i < n; i++) if (buf[i] < 0 || buf[i] >= limit) return start + i;
        }
        return -1;
    }

    /** The document holding flat-stream position pos (the last of several that start there, so never an empty one). */
    public int documentAt(long pos) {
        int lo = 0, hi = documentCount() - 1;
        while (lo < hi) {
            int mid = (lo + hi + 1) >>> 1;
            if (documentStart(mid) <= pos) lo = mid;
            else hi = mid - 1;
        }
        return lo;
    }

    /** The loss flags of a document: 1 = predicting this token is trained. All 1 without a mask file. */
    public byte[] mask(int doc) {
        byte[] out = new byte[documentLength(doc)];
        readMask(doc, 0, out, 0, out.length);
        return out;
    }

    /** Flags [offset, offset + length) of a document into out[outOffset, ...). */
    public void readMask(int doc, int offset, byte[] out, int outOffset, int length) {
        checkRange(doc, offset, length);
        if (mask == null) {
            Arrays.fill(out, outOffset, outOffset + length, (byte) 1);
            return;
        }
        long token = pointers[doc] / dtype.bytes + offset;
        ByteBuffer buf = ByteBuffer.wrap(out, outOffset, length);
        readFully(mask, buf, BinIdxFormat.MASK_HEADER_BYTES + token, "mask");
        for (int i = outOffset; i < outOffset + length; i++) {
            if (out[i] != 0 && out[i] != 1) throw badFlag(out[i], token + i - outOffset);
        }
    }

    private IllegalArgumentException badFlag(byte flag, long token) {
        return new IllegalArgumentException(prefix + ".mask: flag " + (flag & 0xff) + " for token " + token + " (byte "
                + (BinIdxFormat.MASK_HEADER_BYTES + token) + "), expected 0 or 1: the mask is corrupt");
    }

    /** Tokens whose flag is 1, counted over the whole mask file (all tokens without one). */
    public long trainedTokenCount() {
        if (mask == null) return tokenCount;
        long trained = 0;
        ByteBuffer buf = ByteBuffer.allocate(1 << 20);
        long pos = BinIdxFormat.MASK_HEADER_BYTES, end = BinIdxFormat.MASK_HEADER_BYTES + tokenCount;
        while (pos < end) {
            buf.clear();
            buf.limit((int) Math.min(buf.capacity(), end - pos));
            readFully(mask, buf, pos, "mask");
            byte[] a = buf.array();
            for (int i = 0; i < buf.limit(); i++) {
                if (a[i] != 0 && a[i] != 1) throw badFlag(a[i], pos - BinIdxFormat.MASK_HEADER_BYTES + i);
                trained += a[i];
            }
            pos += buf.limit();
        }
        return trained;
    }

    /**
     * Document i as a training sequence: each position predicts the next token, and its loss counts if the flag of
     * that next token is 1 (the mask file flags the predicted token, TokenSequence masks the predicting position).
     */
    public TokenSequence trainingSequence(int doc) {
        return toTrainingSequence(document(doc), mask(doc));
    }

    /** Tokens and per-token flags to a TokenSequence (see {@link #trainingSequence}). */
    public static TokenSequence toTrainingSequence(int[] tokens, byte[] flags) {
        int n = tokens.length;
        int[] targets = new int[n];
        float[] positionMask = new float[n];
        for (int t = 0; t + 1 < n; t++) {
            targets[t] = tokens[t + 1];
            positionMask[t] = flags[t + 1];
        }
        targets[n - 1] = -1;
        return new TokenSequence(tokens, targets, positionMask);
    }

    private int checkIndex(int doc) {
        if (doc < 0 || doc >= sizes.length) throw new IndexOutOfBoundsException("document " + doc + " of " + sizes.length + " in " + prefix);
        return doc;
    }

    private void checkRange(int doc, int offset, int length) {
        int size = documentLength(doc);
        if (offset < 0 || length < 0 || offset + length > size) {
            throw new IndexOutOfBoundsException("tokens [" + offset + ", " + (offset + length) + ") of document " + doc + " (" + size + " tokens)");
        }
    }

    private void readFully(FileChannel ch, ByteBuffer buf, long position, String what) {
        try {
            long pos = position;
            while (buf.hasRemaining()) {
                int n = ch.read(buf, pos);
                if (n < 0) throw new IllegalArgumentException(prefix + "." + what + " ends early at byte " + pos + " (file changed while open?)");
                pos += n;
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read " + prefix + "." + what + ": " + e.getMessage(), e);
        }
    }

    private static void closeQuietly(FileChannel ch) {
        if (ch == null) return;
        try {
            ch.close();
        } catch (IOException ignored) {
            // already failing with a better error
        }
    }

    @Override
    public void close() {
        closeQuietly(bin);
        closeQuietly(mask);
    }

    @Override
    public String toString() {
        return prefix + " (" + sizes.length + " documents, " + tokenCount + " " + dtype.numpyName() + " tokens" + (mask == null ? ", no mask" : "") + ")";
    }
}
