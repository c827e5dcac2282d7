package ai.longrwkv.datasets.binidx;

import ai.longrwkv.datasets.io.IntList;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;

/**
 * Writes items (documents or packed sequences) to a .bin, a .mask sidecar and, on {@link #finish}, the .idx, at the
 * paths given (temporary files of an {@link ai.longrwkv.datasets.io.AtomicFileSet}; this class does not rename).
 * Memory: the buffers plus 4 bytes per item for the sizes, as Megatron's own builder keeps.
 */
public final class BinIdxWriter implements AutoCloseable {
    private static final int BUFFER_BYTES = 1 << 20;

    private final Path binFile, idxFile, maskFile;
    private final TokenDtype dtype;
    private final FileChannel bin, mask;
    private final ByteBuffer binBuffer = ByteBuffer.allocateDirect(BUFFER_BYTES).order(ByteOrder.LITTLE_ENDIAN);
    private final ByteBuffer maskBuffer = ByteBuffer.allocateDirect(BUFFER_BYTES);
    private final IntList sizes = new IntList(1024);
    private long tokens;
    private int currentItemTokens;
    private long trainedTokens;
    private boolean finished;

    /** maskFile may be null: then no loss mask is written (a plain binidx). */
    public BinIdxWriter(Path binFile, Path idxFile, Path maskFile, TokenDtype dtype) {
        this.binFile = binFile;
        this.idxFile = idxFile;
        this.maskFile = maskFile;
        this.dtype = dtype;
        try {
            bin = FileChannel.open(binFile, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE);
            mask = maskFile == null ? null : FileChannel.open(maskFile, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE);
            if (mask != null) {
                // the token count is patched in by finish()
                ByteBuffer h = ByteBuffer.allocate(BinIdxFormat.MASK_HEADER_BYTES).order(ByteOrder.LITTLE_ENDIAN);
                h.put(BinIdxFormat.MASK_MAGIC).putLong(BinIdxFormat.MASK_VERSION).putLong(0);
                writeFully(mask, h.flip());
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot create " + binFile + ": " + e.getMessage(), e);
        }
    }

    public TokenDtype dtype() {
        return dtype;
    }

    /**
     * Appends one item: tokens[from, to) with loss flags flags[flagsFrom, ...) (0 or 1 each; ignored when there is
     * no mask file). A token id outside the dtype's range is an IllegalArgumentException, never a silent wrap.
     */
    public void add(int[] tokenIds, int from, int to, byte[] flags, int flagsFrom) {
        if (to <= from) throw new IllegalArgumentException("an item must hold at least one token");
        for (int i = from; i < to; i++) addToken(tokenIds[i], flags == null ? 1 : flags[flagsFrom + i - from]);
        endItem();
    }

    /** Appends one token to the item being written (for items too long to hold in memory); see {@link #endItem}. */
    public void addToken(int id, int flag) {
        if (finished) throw new IllegalStateException("writer already finished");
        if (id < 0 || id > dtype.maxId) {
            throw new IllegalArgumentException("token id " + id + " (item " + sizes.size() + ", position " + currentItemTokens
                    + ") does not fit the output dtype " + dtype.numpyName() + " (0.." + dtype.maxId + ")");
        }
        if (flag != 0 && flag != 1) {
            throw new IllegalArgumentException("loss flag " + flag + " at item " + sizes.size() + ", position " + currentItemTokens + " must be 0 or 1");
        }
        if (currentItemTokens == Integer.MAX_VALUE) {
            throw new IllegalArgumentException("item " + sizes.size() + " is longer than " + Integer.MAX_VALUE + " tokens, the most a binidx size holds");
        }
        try {
            if (binBuffer.remaining() < 4) flush(bin, binBuffer);
            switch (dtype) {
                case UINT16 -> binBuffer.putShort((short) id);
                case INT32 -> binBuffer.putInt(id);
                case UINT8 -> binBuffer.put((byte) id);
            }
            if (mask != null) {
                if (!maskBuffer.hasRemaining()) flush(mask, maskBuffer);
                maskBuffer.put((byte) flag);
                trainedTokens += flag;
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write " + binFile + ": " + e.getMessage(), e);
        }
        currentItemTokens++;
        tokens++;
    }

    /** Ends the item built with {@link #addToken}; it must hold at least one token. */
    public void endItem() {
        if (currentItemTokens == 0) throw new IllegalArgumentException("an item must hold at least one token");
        sizes.add(currentItemTokens);
        currentItemTokens = 0;
    }

    public void add(int[] tokenIds, byte[] flags) {
        add(tokenIds, 0, tokenIds.length, flags, 0);
    }

    public int items() {
        return sizes.size();
    }

    public long tokens() {
        return tokens;
    }

    /** Tokens with loss flag 1 (0 without a mask file). */
    public long trainedTokens() {
        return trainedTokens;
    }

    /** Flushes .bin and .mask and writes the .idx. The files are then complete (not yet forced or renamed). */
    public void finish() {
        if (finished) return;
        if (currentItemTokens != 0) throw new IllegalStateException("finish() inside an item: call endItem() first");
        finished = true;
        try {
            flush(bin, binBuffer);
            bin.close();
            if (mask != null) {
                flush(mask, maskBuffer);
                ByteBuffer count = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(tokens).flip();
                while (count.hasRemaining()) mask.write(count, BinIdxFormat.MASK_HEADER_BYTES - 8 + count.position());
                mask.close();
            }
            writeIndex();
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write " + idxFile + ": " + e.getMessage(), e);
        }
    }

    private void writeIndex() throws IOException {
        int count = sizes.size();
        try (FileChannel idx = FileChannel.open(idxFile, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE)) {
            ByteBuffer buf = ByteBuffer.allocateDirect(BUFFER_BYTES).order(ByteOrder.LITTLE_ENDIAN);
            buf.put(BinIdxFormat.IDX_MAGIC).putLong(BinIdxFormat.IDX_VERSION).put((byte) dtype.code)
                    .putLong(count).putLong(count + 1L);
            int[] size = sizes.array();
            for (int i = 0; i < count; i++) {
                if (buf.remaining() < 8) flush(idx, buf);
                buf.putInt(size[i]);
            }
            long pointer = 0;
            for (int i = 0; i < count; i++) {
                if (buf.remaining() < 8) flush(idx, buf);
                buf.putLong(pointer);
                pointer += (long) size[i] * dtype.bytes;
            }
            // every item is one document: Megatron's builder starts doc_idx with 0 and appends the item count after each
            for (long d = 0; d <= count; d++) {
                if (buf.remaining() < 8) flush(idx, buf);
                buf.putLong(d);
            }
            flush(idx, buf);
        }
    }

    /** Closes the files; a writer closed before finish() leaves incomplete files for the caller to delete. */
    @Override
    public void close() {
        try {
            bin.close();
            if (mask != null) mask.close();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    private static void flush(FileChannel ch, ByteBuffer buf) throws IOException {
        buf.flip();
        while (buf.hasRemaining()) ch.write(buf);
        buf.clear();
    }

    private static void writeFully(FileChannel ch, ByteBuffer buf) throws IOException {
        while (buf.hasRemaining()) ch.write(buf);
    }

    @Override
    public String toString() {
        return "BinIdxWriter(" + binFile + ", " + idxFile + ", " + maskFile + ")";
    }
}
