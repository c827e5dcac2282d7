package ai.longrwkv.core.io;

import ai.longrwkv.core.model.ModelConfig;
import ai.longrwkv.core.model.ModelWeights;
import ai.longrwkv.core.model.ParamSpec;
import ai.longrwkv.core.tensor.HostTensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.api.function.Executable;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class RwkvCppModelReaderTest {
    @TempDir
    Path tmp;

    @Test
    void readsFp32OracleInPthForm() throws IOException {
        Path file = TestFiles.oracle(TestFiles.FP32);
        ModelWeights w = RwkvCppModelReader.read(file);
        assertEquals(270, w.tensors().size());
        assertEquals(file.toString(), w.source());
        assertEquals(ModelConfig.RWKV_CPP_GROUP_NORM_EPS, w.impliedGroupNormEps());

        ModelConfig cfg = ModelConfig.fromWeights(w, w.impliedGroupNormEps());
        assertEquals(12, cfg.nLayer());
        assertEquals(64, cfg.nEmbd());
        assertEquals(8, cfg.nHead());
        assertEquals(8, cfg.headSize());
        assertEquals(256, cfg.dimFfn());
        assertEquals(256, cfg.vocabSize());
        // every tensor has exactly the .pth key and shape (fromWeights checks shapes, this checks nothing extra is there)
        List<String> expectedKeys = new ArrayList<>();
        for (ParamSpec p : ParamSpec.all(cfg)) expectedKeys.add(p.key());
        assertEquals(expectedKeys.stream().sorted().toList(), w.tensors().keySet().stream().sorted().toList());

        Map<String, TestFiles.RawTensor> raw = TestFiles.parseRaw(file);
        assertEquals(new ArrayList<>(raw.keySet()), new ArrayList<>(w.tensors().keySet()), "file order kept");

        assertArrayEquals(new int[]{1, 1, 64}, w.get("blocks.0.att.time_mix_k").shape());
        assertArrayEquals(new int[]{1, 1, 64}, w.get("blocks.5.ffn.time_mix_r").shape());
        assertArrayEquals(new int[]{8, 8}, w.get("blocks.0.att.time_faaaa").shape());
        assertArrayEquals(new int[]{256, 64}, w.get("blocks.0.ffn.key.weight").shape());
        assertArrayEquals(new int[]{64, 256}, w.get("blocks.0.ffn.value.weight").shape());
        assertArrayEquals(new int[]{256, 64}, w.get("emb.weight").shape());
        assertArrayEquals(raw.get("emb.weight").values(), w.get("emb.weight").data(), "FP32 data taken as stored");
        assertArrayEquals(raw.get("blocks.3.att.time_faaaa").values(), w.get("blocks.3.att.time_faaaa").data(), "faaaa stays raw");

        for (int l = 0; l < 12; l++) {
            String key = "blocks." + l + ".att.time_decay";
            HostTensor td = w.get(key);
            assertArrayEquals(new int[]{8, 8}, td.shape(), key);
            float[] stored = raw.get(key).values();
            assertArrayEquals(new int[]{1, 8, 8}, raw.get(key).fileShape());
            for (int i = 0; i < stored.length; i++) {
                double back = Math.exp(-Math.exp(td.data()[i]));
                assertEquals(stored[i], back, 1e-6 * stored[i], key + "[" + i + "]");
            }
        }
    }

    @Test
    void fp16AndFp32FilesAgree() throws IOException {
        Path f32 = TestFiles.oracle(TestFiles.FP32);
        Path f16 = TestFiles.oracle(TestFiles.FP16);
        ModelWeights a = RwkvCppModelReader.read(f32);
        ModelWeights b = RwkvCppModelReader.read(f16);
        assertEquals(270, b.tensors().size());
        assertEquals(new ArrayList<>(a.tensors().keySet()), new ArrayList<>(b.tensors().keySet()));
        ModelConfig cfg = ModelConfig.fromWeights(b, b.impliedGroupNormEps());
        assertEquals(64, cfg.nEmbd());
        double embDiff = maxAbsDiff(a.get("emb.weight"), b.get("emb.weight"));
        assertTrue(embDiff <= 2e-3, "emb.weight differs by " + embDiff);
        // fp32 tensors (1-D, time_*) are identical; fp16 ones within half precision of the fp32 values
        Map<String, TestFiles.RawTensor> raw16 = TestFiles.parseRaw(f16);
        for (String key : a.tensors().keySet()) {
            HostTensor x = a.get(key), y = b.get(key);
            assertArrayEquals(x.shape(), y.shape(), key);
            if (raw16.get(key).dataType() == 0) {
                assertArrayEquals(x.data(), y.data(), key);
            } else {
                for (int i = 0; i < x.size(); i++) {
                    assertEquals(x.data()[i], y.data()[i], Math.abs(x.data()[i]) * 0x1p-11 + 0x1p-25, key + "[" + i + "]");
                }
            }
        }
        assertEquals(1, raw16.get("emb.weight").dataType(), "the FP16 oracle really holds fp16 data");
    }

    @Test
    void modelFilesLoadsBothOracles() {
        for (String name : new String[]{TestFiles.FP32, TestFiles.FP16}) {
            Path file = TestFiles.oracle(name);
            assertEquals(ModelFiles.Format.RWKV_CPP, ModelFiles.detectFormat(file));
            ModelWeights w = ModelFiles.load(file);
            assertEquals(270, w.tensors().size());
            assertEquals(1e-5, ModelFiles.defaultGroupNormEps(w));
        }
    }

    // ---- bad files -------------------------------------------------------------------------------------------

    private static ModelFormatException fails(Executable e, Path file, String... words) {
        ModelFormatException ex = assertThrows(ModelFormatException.class, e);
        String msg = ex.getMessage();
        assertTrue(msg.contains(file.getFileName().toString()), "message names the file: " + msg);
        for (String w : words) assertTrue(msg.contains(w), "message contains '" + w + "': " + msg);
        return ex;
    }

    private static ModelFormatException readFails(Path file, String... words) {
        return fails(() -> RwkvCppModelReader.read(file), file, words);
    }

    private Path copyOracle(String newName) throws IOException {
        return Files.copy(TestFiles.oracle(TestFiles.FP32), tmp.resolve(newName));
    }

    private static void patchInt(Path file, long offset, int value) throws IOException {
        byte[] b = Files.readAllBytes(file);
        ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN).putInt((int) offset, value);
        Files.write(file, b);
    }

    private static void patchFloat(Path file, long offset, float value) throws IOException {
        patchInt(file, offset, Float.floatToRawIntBits(value));
    }

    @Test
    void truncatedInsideTensorNamesTheKey() throws IOException {
        Path file = copyOracle("cut.bin");
        TestFiles.RawTensor t = TestFiles.parseRaw(file).get("blocks.3.att.key.weight");
        byte[] all = Files.readAllBytes(file);
        Files.write(file, Arrays.copyOf(all, (int) t.dataOffset() + 100));
        readFails(file, "blocks.3.att.key.weight", "truncated", String.valueOf(t.recordOffset()));
        fails(() -> ModelFiles.load(file), file, "blocks.3.att.key.weight", "truncated");
    }

    @Test
    void truncatedHeaderAndRecordHeader() throws IOException {
        byte[] all = Files.readAllBytes(TestFiles.oracle(TestFiles.FP32));
        Path shortHeader = Files.write(tmp.resolve("header.bin"), Arrays.copyOf(all, 10));
        readFails(shortHeader, "truncated header");
        Path shortRecord = Files.write(tmp.resolve("record.bin"), Arrays.copyOf(all, 24 + 6));
        readFails(shortRecord, "truncated", "byte offset 24");
        Path shortKey = Files.write(tmp.resolve("key.bin"), Arrays.copyOf(all, 24 + 12 + 8 + 3));
        readFails(shortKey, "truncated", "key");
    }

    @Test
    void wrongMagic() throws IOException {
        Path file = copyOracle("magic.bin");
        patchInt(file, 0, 0x12345678);
        readFails(file, "magic", "0x12345678", "not an rwkv.cpp");
        Path text = Files.writeString(tmp.resolve("text.bin"), "hello, this is just text");
        readFails(text, "not an rwkv.cpp");
    }

    @Test
    void unsupportedVersion() throws IOException {
        Path file = copyOracle("version.bin");
        patchInt(file, 4, 102);
        readFails(file, "version", "102");
    }

    @Test
    void quantizedDataTypesAreRefused() throws IOException {
        Path file = copyOracle("q5.bin");
        patchInt(file, 20, 7);
        readFails(file, "data type 7", "quantized", "not supported");
        Path perTensor = copyOracle("q4tensor.bin");
        patchInt(perTensor, 24 + 8, 2); // data_type of the first record (emb.weight)
        readFails(perTensor, "emb.weight", "quantized", "not supported");
        Path unknown = copyOracle("type99.bin");
        patchInt(unknown, 24 + 8, 99);
        readFails(unknown, "emb.weight", "unknown data type 99");
    }

    @Test
    void nonsenseDimCount() throws IOException {
        Map<String, TestFiles.RawTensor> raw = TestFiles.parseRaw(TestFiles.oracle(TestFiles.FP32));
        long rec = raw.get("blocks.0.ln1.weight").recordOffset();
        Path five = copyOracle("dims5.bin");
        patchInt(five, rec, 5);
        readFails(five, "dim_count 5", "expected 1..4", "byte offset " + rec);
        Path zero = copyOracle("dims0.bin");
        patchInt(zero, rec, 0);
        readFails(zero, "dim_count 0");
        // a plausible but wrong dim_count misaligns everything after it; it still must end in a clear refusal
        Path three = copyOracle("dims3.bin");
        patchInt(three, 24, 3); // emb.weight really has 2 dims
        readFails(three);
    }

    @Test
    void nonsenseKeyLength() throws IOException {
        Path zero = copyOracle("key0.bin");
        patchInt(zero, 24 + 4, 0);
        readFails(zero, "key length 0");
        Path huge = copyOracle("keyhuge.bin");
        patchInt(huge, 24 + 4, 5000);
        readFails(huge, "key length 5000", "1..1024");
    }

    @Test
    void decayOutsideUnitInterval() throws IOException {
        TestFiles.RawTensor td = TestFiles.parseRaw(TestFiles.oracle(TestFiles.FP32)).get("blocks.2.att.time_decay");
        Path file = copyOracle("decay.bin");
        patchFloat(file, td.dataOffset() + 4 * 5, 1.5f);
        readFails(file, "blocks.2.att.time_decay", "w[5]", "(0, 1)");
        Path zero = copyOracle("decay0.bin");
        patchFloat(zero, td.dataOffset(), 0f);
        readFails(zero, "blocks.2.att.time_decay", "(0, 1)");
        Path nan = copyOracle("decaynan.bin");
        patchFloat(nan, td.dataOffset(), Float.NaN);
        readFails(nan, "blocks.2.att.time_decay", "(0, 1)");
    }

    @Test
    void duplicateKey() throws IOException {
        Path file = new TestFiles.RwkvCppBuilder()
                .tensor("ln_out.weight", new int[]{2}, 1f, 2f)
                .tensor("ln_out.bias", new int[]{2}, 0f, 0f)
                .tensor("ln_out.weight", new int[]{2}, 3f, 4f)
                .writeTo(tmp.resolve("dup.bin"));
        readFails(file, "duplicate", "ln_out.weight", "byte offset 24");
    }

    @Test
    void smallHandBuiltFileAndTransforms() throws IOException {
        float w0 = (float) Math.exp(-Math.exp(-1.25)), w1 = (float) Math.exp(-Math.exp(0.5));
        Path file = new TestFiles.RwkvCppBuilder()
                .tensor("emb.weight", new int[]{2, 4}, 1, 2, 3, 4, 5, 6, 7, 8)
                .tensor("blocks.0.att.time_decay", new int[]{1, 2, 1}, w0, w1)
                .tensor("blocks.0.att.time_faaaa", new int[]{1, 2, 1}, 0.25f, -0.5f)
                .tensor("blocks.0.att.time_mix_k", new int[]{2}, 0.1f, 0.2f)
                .writeTo(tmp.resolve("small.bin"));
        ModelWeights w = RwkvCppModelReader.read(file);
        assertEquals(List.of("emb.weight", "blocks.0.att.time_decay", "blocks.0.att.time_faaaa", "blocks.0.att.time_mix_k"),
                new ArrayList<>(w.tensors().keySet()));
        assertArrayEquals(new int[]{4, 2}, w.get("emb.weight").shape());
        assertArrayEquals(new int[]{1, 2}, w.get("blocks.0.att.time_decay").shape());
        assertEquals(-1.25f, w.get("blocks.0.att.time_decay").data()[0], 1e-5f);
        assertEquals(0.5f, w.get("blocks.0.att.time_decay").data()[1], 1e-5f);
        assertArrayEquals(new float[]{0.25f, -0.5f}, w.get("blocks.0.att.time_faaaa").data());
        assertArrayEquals(new int[]{1, 1, 2}, w.get("blocks.0.att.time_mix_k").shape());
        // not an x052 model: ModelFiles refuses it after reading
        fails(() -> ModelFiles.load(file), file, "not an RWKV-5.2");
    }

    @Test
    void headerDisagreesWithEmbedding() throws IOException {
        Path file = new TestFiles.RwkvCppBuilder(RwkvCppModelReader.MAGIC, 100, 5, 2, 1, 0)
                .tensor("emb.weight", new int[]{2, 4}, 1, 2, 3, 4, 5, 6, 7, 8)
                .writeTo(tmp.resolve("vocab.bin"));
        readFails(file, "n_vocab=5", "emb.weight");
    }

    @Test
    void headerOnlyFileHasNoTensors() throws IOException {
        Path file = new TestFiles.RwkvCppBuilder().writeTo(tmp.resolve("empty-model.bin"));
        readFails(file, "no tensors");
    }

    @Test
    void emptyDirectoryMissing() throws IOException {
        Path empty = Files.write(tmp.resolve("empty.bin"), new byte[0]);
        readFails(empty, "empty");
        fails(() -> ModelFiles.load(empty), empty, "empty");

        Path dir = Files.createDirectory(tmp.resolve("somedir.bin"));
        readFails(dir, "directory");
        fails(() -> ModelFiles.load(dir), dir, "directory");

        Path missing = tmp.resolve("missing-model.bin");
        readFails(missing, "not found");
        fails(() -> ModelFiles.load(missing), missing, "not found");
    }

    @Test
    void modelFilesRefusesPthAndUnknownFormats() throws IOException {
        Path pth = Files.write(tmp.resolve("model.pth"), new byte[]{'P', 'K', 3, 4, 0, 0, 0, 0, 0, 0, 0, 0});
        assertEquals(ModelFiles.Format.PYTORCH_ZIP, ModelFiles.detectFormat(pth));
        fails(() -> ModelFiles.load(pth), pth, "zip", "truncated");
        Path junk = Files.writeString(tmp.resolve("junk.dat"), "just some text, not a model");
        assertEquals(ModelFiles.Format.UNKNOWN, ModelFiles.detectFormat(junk));
        fails(() -> ModelFiles.load(junk), junk, "unrecognised model format", "6a 75 73 74");
    }

    private static double maxAbsDiff(HostTensor a, HostTensor b) {
        double m = 0;
        for (int i = 0; i < a.size(); i++) m = Math.max(m, Math.abs(a.data()[i] - b.data()[i]));
        return m;
    }
}
