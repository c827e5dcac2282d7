package ai.longrwkv.core.io;

import java.io.EOFException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;

/**
 * Positional reads from a FileChannel, shared by the model readers. Tensor data is read in bounded chunks and
 * converted straight into the float[] that backs the HostTensor, so a file is never loaded into one big byte array
 * (and files over 2 GiB work).
 */
final class TensorDataReader {
    /** Element encodings the readers convert to float32. */
    enum Encoding {
        F32(4), F16(2), BF16(2);

        final int bytes;

        Encoding(int bytes) { this.bytes = bytes; }
    }

    /** Chunk size for data reads; a multiple of 4 so that no element straddles two chunks. */
    private static final int CHUNK_BYTES = 1 << 20;

    private final FileChannel channel;
    private ByteBuffer chunk;

    TensorDataReader(FileChannel channel) {
        this.channel = channel;
    }

    /** Reads exactly {@code length} bytes at {@code position} into a little-endian buffer (flipped for reading). */
    ByteBuffer readBytes(long position, int length) throws IOException {
        ByteBuffer buf = ByteBuffer.allocate(length).order(ByteOrder.LITTLE_ENDIAN);
        readFully(buf, position);
        buf.flip();
        return buf;
    }

    /** Reads {@code count} elements at {@code position} and converts them to float32. */
    float[] readFloats(long position, int count, Encoding enc) throws IOException {
        float[] out = new float[count];
        if (chunk == null) chunk = ByteBuffer.allocateDirect(CHUNK_BYTES).order(ByteOrder.LITTLE_ENDIAN);
        int perChunk = CHUNK_BYTES / enc.bytes;
        int done = 0;
        long pos = position;
        while (done < count) {
            int n = Math.min(perChunk, count - done);
            chunk.clear();
            chunk.limit(n * enc.bytes);
            readFully(chunk, pos);
            chunk.flip();
            switch (enc) {
                case F32 -> chunk.asFloatBuffer().get(out, done, n);
                case F16 -> {
                    for (int i = 0; i < n; i++) out[done + i] = Float16.halfToFloat(chunk.getShort(2 * i));
                }
                case BF16 -> {
                    for (int i = 0; i < n; i++) out[done + i] = Float16.bf16ToFloat(chunk.getShort(2 * i));
                }
            }
            done += n;
            pos += (long) n * enc.bytes;
        }
        return out;
    }

    private void readFully(ByteBuffer buf, long position) throws IOException {
        long pos = position;
        while (buf.hasRemaining()) {
            int r = channel.read(buf, pos);
            // callers check sizes against channel.size() first, so this only happens if the file shrinks meanwhile
            if (r < 0) throw new EOFException("unexpected end of file at byte offset " + pos);
            pos += r;
        }
    }
}
