package ai.longrwkv.core.io;


import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;

/** Test helpers: locating the shared oracle files and an independent, minimal parser of rwkv.cpp files. */
final class TestFiles {
    static final String FP32 = "tiny-rwkv-5v2-730K-FP32.bin";
    static final String FP16 = "tiny-rwkv-5v2-730K-FP16.bin";

    private TestFiles() {}

    /** shared/oracle/NAME, found by walking up from the working directory; skips the test when absent. */
    static Path oracle(String name) {
        return ai.longrwkv.core.testing.TestModels.oracle(name);
    }

    /** One record of an rwkv.cpp file exactly as stored (ggml shape order, converter's values). */
    record RawTensor(String key, int[] fileShape, int dataType, long recordOffset, long dataOffset, float[] values) {}

    /**
     * Parses an rwkv.cpp file with plain ByteBuffer code, independently of RwkvCppModelReader, so the tests can
     * compare against the stored bytes. FP16 values are decoded with Float16 (tested on its own).
     */
    static Map<String, RawTensor> parseRaw(Path file) throws IOException {
        ByteBuffer b = ByteBuffer.wrap(Files.readAllBytes(file)).order(ByteOrder.LITTLE_ENDIAN);
        b.position(24);
        Map<String, RawTensor> out = new LinkedHashMap<>();
        while (b.hasRemaining()) {
            long rec = b.position();
            int dims = b.getInt(), keyLen = b.getInt(), type = b.getInt();
            int[] shape = new int[dims];
            int n = 1;
            for (int i = 0; i < dims; i++) {
                shape[i] = b.getInt();
                n *= shape[i];
            }
            byte[] key = new byte[keyLen];
            b.get(key);
            long dataOffset = b.position();
            float[] v = new float[n];
            for (int i = 0; i < n; i++) v[i] = type == 0 ? b.getFloat() : Float16.halfToFloat(b.getShort());
            String k = new String(key, StandardCharsets.UTF_8);
            out.put(k, new RawTensor(k, shape, type, rec, dataOffset, v));
        }
        return out;
    }

    /** Builds a small rwkv.cpp file by hand: header, then records added with {@link #tensor}. */
    static final class RwkvCppBuilder {
        private final ByteBuffer buf = ByteBuffer.allocate(1 << 20).order(ByteOrder.LITTLE_ENDIAN);

        RwkvCppBuilder(int magic, int version, int nVocab, int nEmbed, int nLayer, int dataType) {
            buf.putInt(magic).putInt(version).putInt(nVocab).putInt(nEmbed).putInt(nLayer).putInt(dataType);
        }

        RwkvCppBuilder() {
            this(RwkvCppModelReader.MAGIC, 101, 4, 2, 1, 0);
        }

        /** A FP32 record; fileShape in ggml order (reversed). */
        RwkvCppBuilder tensor(String key, int[] fileShape, float... values) {
            byte[] k = key.getBytes(StandardCharsets.UTF_8);
            buf.putInt(fileShape.length).putInt(k.length).putInt(0);
            for (int d : fileShape) buf.putInt(d);
            buf.put(k);
            for (float v : values) buf.putFloat(v);
            return this;
        }

        RwkvCppBuilder rawInts(int... values) {
            for (int v : values) buf.putInt(v);
            return this;
        }

        RwkvCppBuilder rawBytes(byte[] bytes) {
            buf.put(bytes);
            return this;
        }

        Path writeTo(Path file) throws IOException {
            byte[] bytes = new byte[buf.position()];
            buf.duplicate().flip().get(bytes);
            return Files.write(file, bytes);
        }
    }
}
