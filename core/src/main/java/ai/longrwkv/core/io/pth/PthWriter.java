package ai.longrwkv.core.io.pth;

import ai.longrwkv.core.io.AtomicFiles;

import ai.longrwkv.core.io.Float16;
import ai.longrwkv.core.model.ModelWeights;
import ai.longrwkv.core.tensor.HostTensor;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * Writes state dicts as PyTorch zip checkpoints that {@code torch.load} reads, also with {@code weights_only=True}:
 * the layout torch.save produces ({@code archive/data.pkl}, {@code archive/byteorder} = "little",
 * {@code archive/data/0..n-1}, {@code archive/version}), data records on 64-byte boundaries, a protocol 2 pickle of an
 * OrderedDict whose tensors are rebuilt by {@code torch._utils._rebuild_tensor_v2}, one storage per tensor.
 * bf16 is the default, like official releases. The bytes depend only on the keys, shapes, values and dtype: the
 * archive name is always "archive" and zip timestamps are fixed. The file is written under a temporary name in the
 * same directory, forced to disk and renamed over the target, so a crash leaves the old file or the complete new one.
 */
public final class PthWriter {
    /** The element type written to the file (values are rounded to nearest, ties to even, as torch's .to() does). */
    public enum Dtype {
        BF16(StorageType.BF16), FP16(StorageType.F16), FP32(StorageType.F32);

        final StorageType storage;

        Dtype(StorageType storage) { this.storage = storage; }

        /** Bytes per value in the file. */
        public int bytes() { return storage.bytes; }

        /** "bf16", "fp16" or "fp32" (also "bfloat16", "f16", "half", "f32", "float", any case). */
        public static Dtype parse(String text) {
            return switch (text.trim().toLowerCase(Locale.ROOT)) {
                case "bf16", "bfloat16" -> BF16;
                case "fp16", "f16", "half", "float16" -> FP16;
                case "fp32", "f32", "float", "float32" -> FP32;
                default -> throw new IllegalArgumentException("unknown dtype '" + text + "', expected bf16, fp16 or fp32");
            };
        }

        @Override public String toString() { return name().toLowerCase(Locale.ROOT); }
    }

    /** Told after each tensor is written (for progress lines on long conversions). */
    @FunctionalInterface
    public interface Progress {
        void tensorWritten(int done, int total, String key, long bytesDone, long bytesTotal);
    }

    /** torch.save's record format version; every torch since 1.6 reads it. */
    static final String VERSION = "3\n";
    static final String ARCHIVE = "archive";
    private static final int CHUNK_BYTES = 1 << 20;

    private PthWriter() {}

    /** Writes tensors already in memory. */
    public static void write(Path file, Map<String, HostTensor> tensors, Dtype dtype) {
        LinkedHashMap<String, ModelWeights.Entry> entries = new LinkedHashMap<>();
        tensors.forEach((k, t) -> entries.put(k, new ModelWeights.InMemory(t)));
        write(file, entries, dtype, null, false);
    }

    /**
     * Writes model weights, loading one tensor at a time (lazy entries, e.g. from {@link PthReader#read}, are read
     * only while their data is written, so a large model is never in memory all at once).
     *
     * @param progress may be null
     */
    public static void write(Path file, ModelWeights weights, Dtype dtype, Progress progress) {
        write(file, weights.entries(), dtype, progress, false);
    }

    /** The general form; {@code forceZip64} is for tests. */
    static void write(Path file, Map<String, ? extends ModelWeights.Entry> entries, Dtype dtype, Progress progress, boolean forceZip64) {
        if (dtype == null) throw new IllegalArgumentException("dtype must not be null");
        List<String> keys = new ArrayList<>(entries.keySet());
        List<int[]> shapes = new ArrayList<>();
        long totalBytes = 0;
        for (String key : keys) {
            if (key == null || key.isEmpty()) throw new IllegalArgumentException(file + ": invalid tensor name '" + key + "'");
            int[] shape = entries.get(key).shape();
            shapes.add(shape);
            totalBytes += HostTensor.numel(shape) * dtype.bytes();
        }
        byte[] pickle = statePickle(keys, shapes, dtype);
        long bytesTotal = totalBytes;
        writeAtomically(file, zip -> {
            zip.record(ARCHIVE + "/data.pkl", pickle);
            zip.record(ARCHIVE + "/byteorder", "little".getBytes(StandardCharsets.US_ASCII));
            ByteBuffer chunk = ByteBuffer.allocateDirect(CHUNK_BYTES).order(ByteOrder.LITTLE_ENDIAN);
            float[] block = new float[ModelWeights.UPLOAD_BLOCK_VALUES];   // a lazy entry is read a block at a time
            long bytesDone = 0;
            for (int i = 0; i < keys.size(); i++) {
                String key = keys.get(i);
                long count = HostTensor.numel(shapes.get(i));
                long bytes = count * dtype.bytes();
                zip.beginRecord(ARCHIVE + "/data/" + i, bytes);
                long[] written = {0};
                try {
                    entries.get(key).forEachBlock(block, (first, values, n) -> {
                        if (written[0] + n > count) return;   // reported below, before the record is ended
                        try {
                            writeValues(zip, values, n, dtype, chunk);
                        } catch (IOException e) {
                            throw new java.io.UncheckedIOException(e);
                        }
                        written[0] += n;
                    });
                } catch (java.io.UncheckedIOException e) {
                    throw e.getCause();
                }
                if (written[0] != count) {
                    throw new IllegalStateException(file + ": tensor '" + key + "' gave more or fewer values than its shape "
                            + Arrays.toString(shapes.get(i)) + " holds (" + count + ")");
                }
                zip.endRecord();
                bytesDone += bytes;
                if (progress != null) progress.tensorWritten(i + 1, keys.size(), key, bytesDone, bytesTotal);
            }
            zip.record(ARCHIVE + "/version", VERSION.getBytes(StandardCharsets.US_ASCII));
        }, forceZip64);
    }

    /**
     * The pickle torch.save writes for an OrderedDict of contiguous tensors: for each key,
     * {@code _rebuild_tensor_v2(persistent_load(('storage', torch.XStorage, 'i', 'cpu', numel)), 0, size, stride,
     * False, OrderedDict())}.
     */
    static byte[] statePickle(List<String> keys, List<int[]> shapes, Dtype dtype) {
        PickleWriter p = new PickleWriter().proto2();
        p.global("collections", "OrderedDict").emptyTuple().reduce();
        if (!keys.isEmpty()) {
            p.mark();
            for (int i = 0; i < keys.size(); i++) {
                int[] shape = shapes.get(i);
                p.string(keys.get(i));
                p.global("torch._utils", "_rebuild_tensor_v2");
                p.mark();
                p.mark().string("storage").global("torch", dtype.storage.torchClass).string(Integer.toString(i)).string("cpu")
                        .integer(HostTensor.numel(shape)).tupleFromMark().binPersId();
                p.integer(0);
                p.integerTuple(Arrays.stream(shape).asLongStream().toArray());
                p.integerTuple(rowMajorStrides(shape));
                p.bool(false);
                p.global("collections", "OrderedDict").emptyTuple().reduce();
                p.tupleFromMark();
                p.reduce();
            }
            p.setItems();
        }
        return p.stop().toByteArray();
    }

    static long[] rowMajorStrides(int[] shape) {
        long[] stride = new long[shape.length];
        long s = 1;
        for (int d = shape.length - 1; d >= 0; d--) {
            stride[d] = s;
            s *= shape[d];
        }
        return stride;
    }

    private static void writeValues(ZipWriter zip, float[] data, int count, Dtype dtype, ByteBuffer chunk) throws IOException {
        chunk.clear();
        for (int i = 0; i < count; i++) {
            float v = data[i];
            if (chunk.remaining() < 4) {
                zip.write(chunk.flip());
                chunk.clear();
            }
            switch (dtype) {
                case FP32 -> chunk.putInt(Float.floatToRawIntBits(v)); // raw bits: NaN payloads survive
                case BF16 -> chunk.putShort(Float16.floatToBf16(v));
                case FP16 -> chunk.putShort(Float16.floatToHalf(v));
            }
        }
        zip.write(chunk.flip());
    }

    /** Writes the records a ZipWriter is handed; used by {@link #write} and by tests that build unusual archives. */
    @FunctionalInterface
    interface ArchiveContent {
        void writeTo(ZipWriter zip) throws IOException;
    }

    static void writeAtomically(Path file, ArchiveContent content, boolean forceZip64) {
        AtomicFiles.write(file, ".pth file", ch -> {
            ZipWriter zip = new ZipWriter(ch, forceZip64);
            content.writeTo(zip);
            zip.finish();
        });
    }
}
