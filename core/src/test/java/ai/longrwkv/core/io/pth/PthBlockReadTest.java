package ai.longrwkv.core.io.pth;

import ai.longrwkv.core.backend.Tensor;
import ai.longrwkv.core.backend.cpu.CpuBackend;
import ai.longrwkv.core.io.Float16;
import ai.longrwkv.core.model.ModelWeights;
import ai.longrwkv.core.tensor.DType;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * A .pth tensor read a block at a time ({@link ModelWeights.Entry#forEachBlock}, how a model is uploaded) gives the
 * values {@link ModelWeights.Entry#load} gives, for plain and strided views, fp32 and bf16 storages, blocks that do
 * not divide the rows, and memory-map pieces smaller than a row.
 */
class PthBlockReadTest {
    @TempDir
    Path tmp;

    /** Storage values 0.5, 1.5, 2.5, ... (exact in bf16 up to 255.5). */
    private static float stored(int i) { return i + 0.5f; }

    private Path archive(String name, String storageClass, int storageNumel, long offset, long[] size, long[] stride) {
        boolean bf16 = storageClass.equals("BFloat16Storage");
        ByteBuffer data = ByteBuffer.allocate(storageNumel * (bf16 ? 2 : 4)).order(ByteOrder.LITTLE_ENDIAN);
        for (int i = 0; i < storageNumel; i++) {
            if (bf16) data.putShort(Float16.floatToBf16(stored(i)));
            else data.putFloat(stored(i));
        }
        byte[] pickle = PthHostileFilesTest.tensorPickle("w", storageClass, storageNumel, offset, size, stride);
        Path f = tmp.resolve(name);
        PthWriter.writeAtomically(f, zip -> {
            zip.record("archive/data.pkl", pickle);
            zip.record("archive/data/0", data.array());
            zip.record("archive/version", "3\n".getBytes(StandardCharsets.US_ASCII));
        }, false);
        return f;
    }

    /** What a view (offset, size, stride) of the storage holds, in row-major order, computed here. */
    private static float[] expected(long offset, long[] size, long[] stride) {
        int n = 1;
        for (long s : size) n *= (int) s;
        float[] out = new float[n];
        int[] idx = new int[size.length];
        for (int k = 0; k < n; k++) {
            long at = offset;
            for (int d = 0; d < size.length; d++) at += idx[d] * stride[d];
            out[k] = stored((int) at);
            for (int d = size.length - 1; d >= 0; d--) {
                if (++idx[d] < size[d]) break;
                idx[d] = 0;
            }
        }
        return out;
    }

    private static float[] viaBlocks(ModelWeights.Entry e, int bufferLength) {
        int n = 1;
        for (int s : e.shape()) n *= s;
        float[] out = new float[n];
        float[] buffer = new float[bufferLength];
        long[] next = {0};
        e.forEachBlock(buffer, (first, values, count) -> {
            assertEquals(next[0], first, "blocks come in order, without gaps");
            System.arraycopy(values, 0, out, (int) first, count);
            next[0] += count;
        });
        assertEquals(n, next[0]);
        return out;
    }

    @Test
    void blocksGiveWhatLoadGivesForPlainAndStridedViews() {
        record View(String name, String storage, int numel, long offset, long[] size, long[] stride) { }
        View[] views = {
                new View("plain", "FloatStorage", 40, 3, new long[]{5, 7}, new long[]{7, 1}),
                new View("plain-bf16", "BFloat16Storage", 40, 3, new long[]{5, 7}, new long[]{7, 1}),
                new View("transposed", "FloatStorage", 35, 0, new long[]{7, 5}, new long[]{1, 7}),
                new View("transposed-bf16", "BFloat16Storage", 35, 0, new long[]{7, 5}, new long[]{1, 7}),
                new View("row-gaps", "FloatStorage", 60, 2, new long[]{4, 3}, new long[]{11, 1}),
                new View("3d-permuted", "FloatStorage", 24, 0, new long[]{3, 2, 4}, new long[]{1, 12, 3}),
        };
        for (View v : views) {
            Path f = archive(v.name() + ".pth", v.storage(), v.numel(), v.offset(), v.size(), v.stride());
            float[] want = expected(v.offset(), v.size(), v.stride());
            for (long pieceBytes : new long[]{PthReader.DEFAULT_PIECE_BYTES, 8}) {
                ModelWeights.Entry e = PthReader.read(f, pieceBytes).entries().get("w");
                assertArrayEquals(want, e.load().data(), v.name());
                for (int buffer : new int[]{1, 3, 4, 5, 6, 13, 1000}) {
                    assertArrayEquals(want, viaBlocks(e, buffer), v.name() + ", buffer " + buffer + ", pieces of " + pieceBytes + " bytes");
                }
            }
        }
    }

    @Test
    void uploadThroughASmallBufferEqualsUploadingTheLoadedTensor() {
        Path f = archive("w.pth", "FloatStorage", 200, 5, new long[]{13, 11}, new long[]{12, 1});
        ModelWeights w = PthReader.read(f);
        try (CpuBackend be = new CpuBackend()) {
            for (DType dtype : new DType[]{DType.F32, DType.BF16}) {
                try (Tensor whole = be.upload(w.get("w"), dtype); Tensor blocks = w.upload(be, "w", dtype, new float[7])) {
                    assertEquals(dtype, blocks.dtype());
                    assertArrayEquals(whole.shape(), blocks.shape());
                    assertArrayEquals(be.download(whole).data(), be.download(blocks).data(), dtype.label());
                }
            }
        }
    }

    @Test
    void inMemoryEntriesAreHandedOverWhole() {
        ai.longrwkv.core.tensor.HostTensor h = new ai.longrwkv.core.tensor.HostTensor(new int[]{2, 3}, new float[]{1, 2, 3, 4, 5, 6});
        ModelWeights w = new ModelWeights(Map.of("w", h), "test", Double.NaN);
        int[] calls = {0};
        w.entries().get("w").forEachBlock(new float[2], (first, values, count) -> {
            calls[0]++;
            assertEquals(0, first);
            assertEquals(6, count);
            assertArrayEquals(h.data(), Arrays.copyOf(values, count));
        });
        assertEquals(1, calls[0]);
    }
}
