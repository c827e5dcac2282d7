package ai.longrwkv.core.io.pth;

import ai.longrwkv.core.io.Float16;
import ai.longrwkv.core.io.ModelFormatException;

import java.io.EOFException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.MappedByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.zip.CRC32;

/**
 * One torch storage (the zip record {@code data/<key>}): a flat array of bf16, fp16 or fp32 values in the file.
 * Tensors are strided views of it. Contiguous runs of values (a whole tensor, as torch.save writes them, or a row of a
 * strided view) and the CRC are read with positional reads through one reused 1 MiB buffer per thread, so that a
 * model's file pages never count in the process's resident memory; only the single values of a view whose rows are
 * strided (a transposed tensor) are read through read-only memory maps of at most {@code pieceBytes} each, because one
 * map cannot exceed 2 GB; piece boundaries are multiples of 4 bytes from the storage start, so no value straddles two.
 *
 * <p>The file is opened again for each read and closed after it (the maps stay valid until collected), so a lazy
 * {@link ai.longrwkv.core.model.ModelWeights} holds no open file. The record's CRC-32 is checked the first time the
 * storage is read (not when shapes are inspected), so a damaged file is reported instead of yielding wrong weights.
 */
final class MappedStorage {
    private final Path file;
    private final String fileName;
    private final long fileSize;
    private final String recordName;
    private final long dataOffset;
    private final long byteLength;
    private final StorageType type;
    private final int crc32;
    private final long pieceBytes;
    private volatile boolean crcChecked;
    /** One reused read buffer per loading thread (1 MiB, a multiple of every element size). */
    private static final ThreadLocal<ByteBuffer> CHUNK =
            ThreadLocal.withInitial(() -> ByteBuffer.allocateDirect(1 << 20).order(ByteOrder.LITTLE_ENDIAN));

    MappedStorage(Path file, String fileName, long fileSize, String recordName, long dataOffset, long byteLength,
                  StorageType type, int crc32, long pieceBytes) {
        if (pieceBytes <= 0 || pieceBytes % 4 != 0 || pieceBytes > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("piece size must be a positive multiple of 4 below 2^31, got " + pieceBytes);
        }
        this.file = file;
        this.fileName = fileName;
        this.fileSize = fileSize;
        this.recordName = recordName;
        this.dataOffset = dataOffset;
        this.byteLength = byteLength;
        this.type = type;
        this.crc32 = crc32;
        this.pieceBytes = pieceBytes;
    }

    StorageType type() { return type; }

    /**
     * Elements [first, first + count) of the view (storageOffset, shape, stride), in row-major order, as float32, into
     * out[0, count). The caller has checked that every index the view touches lies inside the storage.
     */
    void gather(String key, long storageOffset, int[] shape, long[] stride, long first, float[] out, int count) {
        String where = fileName + ": tensor '" + key + "' (" + recordName + ")";
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
            if (ch.size() != fileSize) {
                throw new ModelFormatException(where + ": the file changed size since it was opened (" + fileSize + " -> "
                        + ch.size() + " bytes); read it again");
            }
            if (!crcChecked) {
                checkCrc(ch, where);
                crcChecked = true;
            }
            if (count > 0) gather(new Pieces(ch), storageOffset, shape, stride, first, out, count);
        } catch (EOFException e) {
            throw new ModelFormatException(where + ": the file ended early (truncated while being read?): " + e.getMessage(), e);
        } catch (IOException e) {
            throw new ModelFormatException(where + ": cannot read the file: " + e.getMessage(), e);
        } catch (InternalError e) {
            // what the JVM throws when a mapped page vanishes, i.e. the file was truncated while being read
            throw new ModelFormatException(where + ": the file could not be read through its memory map (truncated while "
                    + "being read?): " + e.getMessage(), e);
        }
    }

    private void checkCrc(FileChannel ch, String where) throws IOException {
        // A CRC of 0 on a non-empty record is what writers that skip checksums leave; there is nothing to check then.
        if (crc32 == 0 || byteLength == 0) return;
        CRC32 crc = new CRC32();
        ByteBuffer chunk = CHUNK.get();
        for (long done = 0; done < byteLength; ) {
            int n = (int) Math.min(chunk.capacity(), byteLength - done);
            chunk.clear().limit(n);
            readFully(ch, chunk, dataOffset + done);
            chunk.flip();
            crc.update(chunk);
            done += n;
        }
        if ((int) crc.getValue() != crc32) {
            throw new ModelFormatException(String.format("%s: CRC-32 of the stored data is %08x but the zip directory records %08x; "
                    + "the file is damaged", where, (int) crc.getValue(), crc32));
        }
    }

    private void gather(Pieces pieces, long storageOffset, int[] shape, long[] stride, long first, float[] out, int count) throws IOException {
        if (isRowMajor(shape, stride)) {
            readRun(pieces.channel, storageOffset + first, count, out, 0);
            return;
        }
        // Strided view: walk the dimensions like an odometer from element `first`; each stretch of an innermost row is
        // one run (or single values).
        int rank = shape.length;
        int rowLength = shape[rank - 1];
        long rowStride = stride[rank - 1];
        int[] counter = new int[rank];
        long base = storageOffset;   // storage index of the element at counter
        long rest = first;
        for (int d = rank - 1; d >= 0; d--) {
            counter[d] = (int) (rest % shape[d]);
            rest /= shape[d];
            base += counter[d] * stride[d];
        }
        for (int pos = 0; pos < count; ) {
            int n = Math.min(count - pos, rowLength - counter[rank - 1]);
            if (rowStride == 1) {
                readRun(pieces.channel, base, n, out, pos);
            } else {
                for (int j = 0; j < n; j++) out[pos + j] = pieces.value(base + j * rowStride);
            }
            pos += n;
            base -= counter[rank - 1] * rowStride;   // back to the row's start, then on to the next row
            counter[rank - 1] = 0;
            for (int d = rank - 2; d >= 0; d--) {
                counter[d]++;
                base += stride[d];
                if (counter[d] < shape[d]) break;
                base -= stride[d] * shape[d];
                counter[d] = 0;
            }
        }
    }

    /** True if the view is a plain C-order block (dimensions of size 1 may have any stride, as in torch). */
    static boolean isRowMajor(int[] shape, long[] stride) {
        long expected = 1;
        for (int d = shape.length - 1; d >= 0; d--) {
            if (shape[d] != 1 && stride[d] != expected) return false;
            expected *= shape[d];
        }
        return true;
    }

    /**
     * Converts count consecutive storage values starting at element {@code first} into out[outPos..], read through
     * {@link #CHUNK}: plain reads, not the memory map, so that the file's pages never count in this process's resident
     * memory (a 15 GB model read through maps left its touched pages resident until the maps were collected).
     */
    private void readRun(FileChannel ch, long first, int count, float[] out, int outPos) throws IOException {
        int size = type.bytes;
        ByteBuffer chunk = CHUNK.get();
        int perChunk = chunk.capacity() / size;
        long pos = dataOffset + first * size;
        while (count > 0) {
            int n = Math.min(count, perChunk);
            chunk.clear().limit(n * size);
            readFully(ch, chunk, pos);
            chunk.flip();
            switch (type) {
                case F32 -> chunk.asFloatBuffer().get(out, outPos, n);
                case BF16 -> {
                    for (int i = 0; i < n; i++) out[outPos + i] = Float16.bf16ToFloat(chunk.getShort(2 * i));
                }
                case F16 -> {
                    for (int i = 0; i < n; i++) out[outPos + i] = Float16.halfToFloat(chunk.getShort(2 * i));
                }
            }
            count -= n;
            outPos += n;
            pos += (long) n * size;
        }
    }

    private static void readFully(FileChannel ch, ByteBuffer buf, long position) throws IOException {
        long pos = position;
        while (buf.hasRemaining()) {
            int r = ch.read(buf, pos);
            if (r < 0) throw new EOFException("at byte offset " + pos);
            pos += r;
        }
    }

    /** The storage's bytes as little-endian memory maps, made when first touched. */
    private final class Pieces {
        final FileChannel channel;
        private final MappedByteBuffer[] maps;

        Pieces(FileChannel channel) {
            this.channel = channel;
            this.maps = new MappedByteBuffer[(int) ((byteLength + pieceBytes - 1) / pieceBytes)];
        }

        int count() { return maps.length; }

        MappedByteBuffer get(int i) throws IOException {
            if (maps[i] == null) {
                long start = (long) i * pieceBytes;
                long length = Math.min(pieceBytes, byteLength - start);
                MappedByteBuffer m = channel.map(FileChannel.MapMode.READ_ONLY, dataOffset + start, length);
                m.order(ByteOrder.LITTLE_ENDIAN);
                maps[i] = m;
            }
            return maps[i];
        }

        float value(long index) throws IOException {
            long byteOffset = index * type.bytes;
            ByteBuffer b = get((int) (byteOffset / pieceBytes));
            int within = (int) (byteOffset % pieceBytes);
            return switch (type) {
                case F32 -> b.getFloat(within);
                case BF16 -> Float16.bf16ToFloat(b.getShort(within));
                case F16 -> Float16.halfToFloat(b.getShort(within));
            };
        }
    }
}
