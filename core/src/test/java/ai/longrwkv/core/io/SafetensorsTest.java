package ai.longrwkv.core.io;

import ai.longrwkv.core.model.ModelConfig;
import ai.longrwkv.core.model.ModelWeights;
import ai.longrwkv.core.tensor.HostTensor;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class SafetensorsTest {
    @TempDir
    Path tmp;

    private static Map<String, HostTensor> sampleTensors() {
        Random rnd = new Random(42);
        float[] emb = new float[12];
        for (int i = 0; i < emb.length; i++) emb[i] = (float) rnd.nextGaussian();
        Map<String, HostTensor> t = new LinkedHashMap<>();
        // deliberately not alphabetical, to check that order is kept
        t.put("emb.weight", new HostTensor(new int[]{3, 4}, emb));
        t.put("blocks.0.att.time_mix_k", new HostTensor(new int[]{1, 1, 5}, new float[]{0.1f, 0.2f, 0.3f, 0.4f, 0.5f}));
        t.put("special", new HostTensor(new int[]{7}, new float[]{-0.0f, Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY,
                Float.MIN_VALUE, Float.intBitsToFloat(0x7fa00001), 1e-40f, Float.MAX_VALUE}));
        t.put("scalar", new HostTensor(new int[]{}, new float[]{3.25f}));
        t.put("empty", new HostTensor(new int[]{2, 0}, new float[0]));
        t.put("a.first", new HostTensor(new int[]{2}, new float[]{1f, -1f}));
        return t;
    }

    private static Map<String, String> sampleMetadata() {
        Map<String, String> m = new LinkedHashMap<>();
        m.put("ln_x_eps", "1e-05");
        m.put("note", "h\u00e9llo \u2713 \"quoted\" <tag> & more");
        return m;
    }

    private static void assertSameTensors(Map<String, HostTensor> expected, Map<String, HostTensor> actual) {
        assertEquals(new ArrayList<>(expected.keySet()), new ArrayList<>(actual.keySet()), "same keys in the same order");
        for (String k : expected.keySet()) {
            HostTensor e = expected.get(k), a = actual.get(k);
            assertArrayEquals(e.shape(), a.shape(), k);
            for (int i = 0; i < e.size(); i++) {
                assertEquals(Float.floatToRawIntBits(e.data()[i]), Float.floatToRawIntBits(a.data()[i]), k + "[" + i + "] bits");
            }
        }
    }

    @Test
    void roundTripIsBitIdenticalAndDeterministic() throws IOException {
        Map<String, HostTensor> t = sampleTensors();
        Path a = tmp.resolve("a.safetensors");
        Path b = tmp.resolve("b.safetensors");
        Safetensors.write(a, t, sampleMetadata());
        Safetensors.write(b, t, sampleMetadata());
        assertArrayEquals(Files.readAllBytes(a), Files.readAllBytes(b), "same input, same bytes");

        assertSameTensors(t, Safetensors.readTensors(a));
        assertEquals(sampleMetadata(), Safetensors.readMetadata(a));

        // overwriting goes through a temp file and leaves nothing else behind
        Safetensors.write(a, Map.of("x", new HostTensor(new int[]{1}, new float[]{7f})), Map.of());
        assertEquals(7f, Safetensors.readTensors(a).get("x").data()[0]);
        assertEquals(Map.of(), Safetensors.readMetadata(a));
        try (Stream<Path> files = Files.list(tmp)) {
            assertEquals(List.of("a.safetensors", "b.safetensors"), files.map(p -> p.getFileName().toString()).sorted().toList());
        }
    }

    @Test
    void headerIsStandardAndPadded() throws IOException {
        Path f = tmp.resolve("h.safetensors");
        Map<String, HostTensor> t = sampleTensors();
        Safetensors.write(f, t, sampleMetadata());
        byte[] bytes = Files.readAllBytes(f);
        long n = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN).getLong(0);
        assertEquals(0, n % 8, "header length is a multiple of 8");
        assertEquals('{', bytes[8]);
        String header = new String(bytes, 8, (int) n, StandardCharsets.UTF_8);
        String json0 = header.stripTrailing();
        assertTrue(json0.endsWith("}"), header);
        assertTrue(header.length() - json0.length() < 8, "at most 7 padding spaces");
        assertTrue(header.substring(json0.length()).chars().allMatch(c -> c == ' '), "padding is spaces");
        JsonObject json = JsonParser.parseString(header).getAsJsonObject();
        List<String> keys = new ArrayList<>(json.keySet());
        assertEquals("__metadata__", keys.get(0));
        assertEquals("1e-05", json.getAsJsonObject("__metadata__").get("ln_x_eps").getAsString());
        long expectedBegin = 0;
        for (String k : t.keySet()) {
            JsonObject e = json.getAsJsonObject(k);
            assertEquals("F32", e.get("dtype").getAsString());
            assertEquals(expectedBegin, e.getAsJsonArray("data_offsets").get(0).getAsLong(), k);
            expectedBegin += 4L * t.get(k).size();
            assertEquals(expectedBegin, e.getAsJsonArray("data_offsets").get(1).getAsLong(), k);
        }
        assertEquals(bytes.length, 8 + n + expectedBegin, "data section is exactly the tensors, contiguous");
    }

    /** A safetensors file from a header string and raw data, written the way other tools would. */
    private Path handMade(String name, String header, byte[] data) throws IOException {
        byte[] h = header.getBytes(StandardCharsets.UTF_8);
        ByteBuffer b = ByteBuffer.allocate(8 + h.length + data.length).order(ByteOrder.LITTLE_ENDIAN);
        b.putLong(h.length).put(h).put(data);
        return Files.write(tmp.resolve(name), b.array());
    }

    @Test
    void readsF16AndBf16() throws IOException {
        float[] halfValues = {1.0f, -2.5f, 65504f, 0x1p-24f};
        float[] bfValues = {1.0f, -3.140625f, 1e30f};
        ByteBuffer data = ByteBuffer.allocate(8 + 6 + 4).order(ByteOrder.LITTLE_ENDIAN);
        for (float v : halfValues) data.putShort(Float16.floatToHalf(v));
        for (float v : bfValues) data.putShort(Float16.floatToBf16(v));
        data.putFloat(0.5f);
        String header = "{\"h\":{\"dtype\":\"F16\",\"shape\":[2,2],\"data_offsets\":[0,8]},"
                + "\"b\":{\"dtype\":\"BF16\",\"shape\":[3],\"data_offsets\":[8,14]},"
                + "\"__metadata__\":{\"format\":\"pt\"},"
                + "\"f\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[14,18]}}";
        Path f = handMade("mixed.safetensors", header, data.array());
        Map<String, HostTensor> t = Safetensors.readTensors(f);
        assertEquals(List.of("h", "b", "f"), new ArrayList<>(t.keySet()));
        assertArrayEquals(new int[]{2, 2}, t.get("h").shape());
        assertArrayEquals(halfValues, t.get("h").data());
        float[] bfExpected = new float[bfValues.length];
        for (int i = 0; i < bfValues.length; i++) bfExpected[i] = Float16.bf16ToFloat(Float16.floatToBf16(bfValues[i]));
        assertArrayEquals(bfExpected, t.get("b").data());
        assertEquals(-3.140625f, t.get("b").data()[1]); // exactly representable in bf16
        assertArrayEquals(new float[]{0.5f}, t.get("f").data());
        assertEquals(Map.of("format", "pt"), Safetensors.readMetadata(f));
        ModelWeights w = Safetensors.readModel(f);
        assertTrue(Double.isNaN(w.impliedGroupNormEps()), "no ln_x_eps metadata: unknown");
        assertEquals(ModelConfig.OFFICIAL_GROUP_NORM_EPS, ModelFiles.defaultGroupNormEps(w));
    }

    private static void assertFails(Path file, Runnable r, String... words) {
        ModelFormatException ex = assertThrows(ModelFormatException.class, r::run);
        String msg = ex.getMessage();
        assertTrue(msg.contains(file.getFileName().toString()), "message names the file: " + msg);
        for (String w : words) assertTrue(msg.contains(w), "message contains '" + w + "': " + msg);
    }

    private void assertBad(String name, String header, byte[] data, String... words) throws IOException {
        Path f = handMade(name, header, data);
        assertFails(f, () -> Safetensors.readTensors(f), words);
    }

    @Test
    void badFiles() throws IOException {
        byte[] four = new byte[4];
        // header length beyond the end of the file
        ByteBuffer b = ByteBuffer.allocate(20).order(ByteOrder.LITTLE_ENDIAN).putLong(1000).put("{\"a\":1}".getBytes(StandardCharsets.UTF_8));
        Path beyond = Files.write(tmp.resolve("beyond.safetensors"), b.array());
        assertFails(beyond, () -> Safetensors.readTensors(beyond), "header length 1000", "beyond the end");
        assertFails(beyond, () -> Safetensors.readMetadata(beyond), "beyond the end");
        Path huge = Files.write(tmp.resolve("huge.safetensors"), new byte[]{-1, -1, -1, -1, -1, -1, -1, -1, '{', '}'});
        assertFails(huge, () -> Safetensors.readTensors(huge), "18446744073709551615", "beyond the end");
        Path tiny = Files.write(tmp.resolve("tiny.safetensors"), new byte[5]);
        assertFails(tiny, () -> Safetensors.readTensors(tiny), "too short");

        assertBad("json.safetensors", "{\"a\":{\"dtype\":\"F32\",", four, "invalid JSON");
        assertBad("json2.safetensors", "{\"a\": nope}", four, "invalid JSON");
        assertBad("trailing.safetensors", "{} {}", four, "invalid JSON");
        assertBad("array.safetensors", "[1, 2]", four, "JSON object");
        assertBad("size.safetensors", "{\"w.x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}}", new byte[8],
                "'w.x'", "data_offsets", "needs 8 bytes");
        assertBad("range.safetensors", "{\"w.y\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", new byte[8],
                "'w.y'", "out of range");
        assertBad("order.safetensors", "{\"w.z\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,0]}}", new byte[8],
                "'w.z'", "out of range");
        assertBad("i8.safetensors", "{\"q.weight\":{\"dtype\":\"I8\",\"shape\":[4],\"data_offsets\":[0,4]}}", four,
                "'q.weight'", "'I8'", "not supported", "F32, F16 and BF16");
        assertBad("nodtype.safetensors", "{\"t\":{\"shape\":[1],\"data_offsets\":[0,4]}}", four, "'t'", "dtype");
        assertBad("frac.safetensors", "{\"t\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", four, "'t'", "integers");
        assertBad("noshape.safetensors", "{\"t\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", four, "'t'", "shape");
        assertBad("meta.safetensors", "{\"__metadata__\":{\"a\":[1]}}", new byte[0], "metadata 'a'");

        Path badEps = handMade("eps.safetensors", "{\"__metadata__\":{\"ln_x_eps\":\"abc\"}}", new byte[0]);
        assertFails(badEps, () -> Safetensors.readModel(badEps), "ln_x_eps", "abc");

        Path missing = tmp.resolve("nothing.safetensors");
        assertFails(missing, () -> Safetensors.readTensors(missing), "not found");
        Path dir = Files.createDirectory(tmp.resolve("dir.safetensors"));
        assertFails(dir, () -> Safetensors.readTensors(dir), "directory");
    }

    /** Issue 13: the tensors must cover the data section exactly and contiguously, or every value is read shifted. */
    @Test
    void dataSectionMustBeCoveredExactlyByTheTensors() throws IOException {
        // a header length one byte short: the JSON still parses (the padding is spaces), all data would be read one byte early
        Path good = tmp.resolve("good.safetensors");
        Safetensors.write(good, sampleTensors(), null);
        byte[] bytes = Files.readAllBytes(good);
        ByteBuffer b = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN);
        long length = b.getLong(0);
        assertEquals(' ', bytes[(int) (8 + length - 1)], "the writer pads the header with spaces");
        b.putLong(0, length - 1);
        Path shortHeader = Files.write(tmp.resolve("short-header.safetensors"), bytes);
        assertFails(shortHeader, () -> Safetensors.readTensors(shortHeader), "belong to no tensor", "header length");
        assertFails(shortHeader, () -> Safetensors.readShapes(shortHeader), "belong to no tensor");
        // trailing bytes after the last tensor
        Path trailing = handMade("trailing-bytes.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", new byte[5]);
        assertFails(trailing, () -> Safetensors.readTensors(trailing), "1 byte(s) after tensor 'a'");
        // two tensors on the same bytes (aliasing)
        assertBad("alias.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                + "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", new byte[8], "'b'", "overlap", "'a'");
        // overlapping by part
        assertBad("overlap.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                + "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", new byte[8], "'b'", "overlap");
        // shifted: a gap before the first tensor
        assertBad("shifted.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", new byte[8],
                "'a'", "gap of 4 bytes", "begin at 0");
        // a gap between tensors
        assertBad("gap.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                + "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}", new byte[12], "'b'", "gap of 4 bytes", "'a'");
        // out of header order but contiguous when sorted by offset: fine, as in the reference implementation
        Path unordered = handMade("unordered.safetensors", "{\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]},"
                + "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                + "\"e\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,8]}}",
                ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putFloat(1f).putFloat(2f).array());
        Map<String, HostTensor> t = Safetensors.readTensors(unordered);
        assertEquals(List.of("b", "a", "e"), new ArrayList<>(t.keySet()));
        assertArrayEquals(new float[]{2f}, t.get("b").data());
        assertArrayEquals(new float[]{1f}, Safetensors.readShapes(unordered).get("a").data());
    }

    @Test
    void emptyTensorMapAndNoMetadata() throws IOException {
        Path f = tmp.resolve("none.safetensors");
        Safetensors.write(f, Map.of(), null);
        assertEquals(Map.of(), Safetensors.readTensors(f));
        assertEquals(Map.of(), Safetensors.readMetadata(f));
    }

    @Test
    void writeFailureLeavesNothingBehind() throws IOException {
        Path notADir = Files.writeString(tmp.resolve("plainfile"), "x");
        Path target = notADir.resolve("model.safetensors");
        UncheckedIOException ex = assertThrows(UncheckedIOException.class,
                () -> Safetensors.write(target, sampleTensors(), Map.of()));
        assertTrue(ex.getMessage().contains("model.safetensors"), ex.getMessage());
        assertThrows(IllegalArgumentException.class, () -> Safetensors.write(tmp.resolve("bad.safetensors"),
                Map.of("__metadata__", new HostTensor(new int[]{1}, new float[1])), Map.of()));
        try (Stream<Path> files = Files.list(tmp)) {
            assertEquals(List.of("plainfile"), files.map(p -> p.getFileName().toString()).toList());
        }
    }

    @Test
    void oracleModelThroughSafetensors() {
        Path bin = TestFiles.oracle(TestFiles.FP32);
        ModelWeights original = ModelFiles.load(bin);
        Path st = tmp.resolve("tiny.safetensors");
        Safetensors.write(st, original.tensors(), Map.of("ln_x_eps", "1e-05"));
        assertEquals(ModelFiles.Format.SAFETENSORS, ModelFiles.detectFormat(st));
        ModelWeights back = ModelFiles.load(st);
        assertSameTensors(original.tensors(), back.tensors());
        assertEquals(1e-5, back.impliedGroupNormEps());
        assertEquals(1e-5, ModelFiles.defaultGroupNormEps(back));
        assertEquals(st.toString(), back.source());
        ModelConfig cfg = ModelConfig.fromWeights(back, ModelFiles.defaultGroupNormEps(back));
        assertEquals(12, cfg.nLayer());
        assertEquals(8, cfg.headSize());

        // a safetensors file that is not x052 is refused by ModelFiles
        Map<String, HostTensor> partial = new LinkedHashMap<>(original.tensors());
        partial.remove("blocks.0.att.gate.weight");
        Path v51 = tmp.resolve("nogate.safetensors");
        Safetensors.write(v51, partial, Map.of());
        assertFails(v51, () -> ModelFiles.load(v51), "not an RWKV-5.2", "5.0/5.1");
    }

    // ---- interoperability with the Python safetensors package, where it is installed --------------------------

    private static boolean pythonHasSafetensors() {
        try {
            Process p = new ProcessBuilder("python3", "-c", "import safetensors, numpy").redirectErrorStream(true).start();
            p.getInputStream().readAllBytes();
            return p.waitFor(60, TimeUnit.SECONDS) && p.exitValue() == 0;
        } catch (IOException e) {
            return false;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return false;
        }
    }

    private static String runPython(String script, Path... args) throws IOException, InterruptedException {
        List<String> cmd = new ArrayList<>(List.of("python3", "-c", script));
        for (Path a : args) cmd.add(a.toString());
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(p.waitFor(120, TimeUnit.SECONDS), "python timed out");
        assertEquals(0, p.exitValue(), "python failed:\n" + out);
        return out;
    }

    @Test
    void pythonSafetensorsReadsOurFilesAndWeReadTheirs() throws Exception {
        Assumptions.assumeTrue(pythonHasSafetensors(), "python3 with safetensors and numpy is not available");
        Path ours = tmp.resolve("ours.safetensors");
        Map<String, HostTensor> t = sampleTensors();
        Safetensors.write(ours, t, sampleMetadata());
        String read = String.join("\n",
                "import json, sys",
                "from safetensors import safe_open",
                "out = {'tensors': {}, 'order': []}",
                "with safe_open(sys.argv[1], framework='numpy') as f:",
                "    out['metadata'] = f.metadata()",
                "    for k in f.keys():",
                "        a = f.get_tensor(k)",
                "        out['tensors'][k] = {'dtype': str(a.dtype), 'shape': list(a.shape), 'hex': a.astype('<f4').tobytes().hex()}",
                "print(json.dumps(out))");
        String output = runPython(read, ours).trim();
        JsonObject json = JsonParser.parseString(output.substring(output.lastIndexOf('\n') + 1)).getAsJsonObject();
        JsonObject meta = json.getAsJsonObject("metadata");
        for (Map.Entry<String, String> m : sampleMetadata().entrySet()) assertEquals(m.getValue(), meta.get(m.getKey()).getAsString());
        JsonObject tensors = json.getAsJsonObject("tensors");
        assertEquals(t.keySet(), tensors.keySet());
        for (String k : t.keySet()) {
            JsonObject e = tensors.getAsJsonObject(k);
            assertEquals("float32", e.get("dtype").getAsString(), k);
            List<Integer> shape = new ArrayList<>();
            for (JsonElement d : e.getAsJsonArray("shape")) shape.add(d.getAsInt());
            List<Integer> expectedShape = new ArrayList<>();
            for (int d : t.get(k).shape()) expectedShape.add(d);
            assertEquals(expectedShape, shape, k);
            StringBuilder hex = new StringBuilder();
            ByteBuffer buf = ByteBuffer.allocate(4).order(ByteOrder.LITTLE_ENDIAN);
            for (float v : t.get(k).data()) {
                buf.clear();
                buf.putInt(Float.floatToRawIntBits(v));
                for (byte x : buf.array()) hex.append(String.format("%02x", x & 0xff));
            }
            assertEquals(hex.toString(), e.get("hex").getAsString(), k);
        }

        // and the other way: a file written by Python with F32 / F16 tensors
        Path theirs = tmp.resolve("theirs.safetensors");
        String write = String.join("\n",
                "import sys, numpy as np",
                "from safetensors.numpy import save_file",
                "save_file({'z.f32': np.arange(6, dtype=np.float32).reshape(2, 3) / 4,",
                "           'a.f16': np.array([1.5, -2.0, 65504.0], dtype=np.float16)}, sys.argv[1], metadata={'ln_x_eps': '0.00064'})");
        runPython(write, theirs);
        Map<String, HostTensor> back = Safetensors.readTensors(theirs);
        assertArrayEquals(new int[]{2, 3}, back.get("z.f32").shape());
        assertArrayEquals(new float[]{0f, 0.25f, 0.5f, 0.75f, 1f, 1.25f}, back.get("z.f32").data());
        assertArrayEquals(new float[]{1.5f, -2f, 65504f}, back.get("a.f16").data());
        assertEquals(64e-5, Safetensors.readModel(theirs).impliedGroupNormEps());
        assertFalse(back.isEmpty());
    }
}
