package ai.longrwkv.cli;

import ai.longrwkv.core.io.ModelFiles;
import ai.longrwkv.core.io.Safetensors;
import ai.longrwkv.core.io.pth.PthReader;
import ai.longrwkv.core.io.pth.PthWriter;
import ai.longrwkv.core.model.ModelConfig;
import ai.longrwkv.core.tensor.HostTensor;
import ai.longrwkv.core.train.StateFile;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Issue 13 ("nothing wrong passes silently"), part a: model and adapter files, output formats, tuned states stored in
 * model files, rwkv.cpp conversion, and nonsense option values, all through the real command line.
 */
class NothingWrongPassesSilentlyTest {
    @TempDir
    Path dir;

    /** Java class names or stack traces that must never reach a user. */
    private static final Pattern LEAK = Pattern.compile("java\\.|javax\\.|com\\.google|Exception|\\.tmp-|\\n\\s+at ");

    private static CliTestSupport.Run ok(String... args) {
        CliTestSupport.Run r = CliTestSupport.run(args);
        assertEquals(0, r.exitCode(), "exit code of " + String.join(" ", args) + "; stderr: " + r.err() + "\nstdout: " + r.out());
        return r;
    }

    /** Exit code 2 and one clean line "error: ..." containing every given part. */
    static CliTestSupport.Run refused(List<String> parts, String... args) {
        CliTestSupport.Run r = CliTestSupport.run(args);
        String what = String.join(" ", args);
        assertEquals(2, r.exitCode(), "exit code of " + what + "; stderr: " + r.err() + "\nstdout: " + r.out());
        assertTrue(r.err().startsWith("error: "), what + ": " + r.err());
        assertEquals(1, r.err().strip().lines().count(), "one line: " + r.err());
        assertFalse(LEAK.matcher(r.err()).find(), "no class names: " + r.err());
        for (String p : parts) assertTrue(r.err().contains(p), what + ": '" + p + "' not in: " + r.err());
        return r;
    }

    private static boolean isSafetensors(Path f) throws Exception {
        byte[] b = Files.readAllBytes(f);
        return b.length > 8 && b[8] == '{';
    }

    private static boolean isTorchZip(Path f) throws Exception {
        byte[] b = Files.readAllBytes(f);
        return b.length > 4 && b[0] == 'P' && b[1] == 'K' && b[2] == 3 && b[3] == 4;
    }

    // --- item 3: file contents match the extension ----------------------------------------------------------------

    @Test
    void initWritesTheFormatItsExtensionNames() throws Exception {
        Path pth = dir.resolve("x.pth"), st = dir.resolve("x.safetensors");
        ok("init", "--layers", "1", "--embd", "16", "--head-size", "8", "--vocab", "256", "--out", pth.toString(), "--dtype", "fp32");
        ok("init", "--layers", "1", "--embd", "16", "--head-size", "8", "--vocab", "256", "--out", st.toString());
        assertTrue(isTorchZip(pth), "x.pth is a torch zip");
        assertTrue(isSafetensors(st), "x.safetensors is safetensors");
        Map<String, HostTensor> a = PthReader.readTensors(pth), b = Safetensors.readTensors(st);
        assertEquals(a.keySet(), b.keySet());
        for (String k : a.keySet()) assertArrayEquals(b.get(k).data(), a.get(k).data(), k);
        refused(List.of("x.bin", ".pth", ".safetensors"), "init", "--layers", "1", "--embd", "16", "--head-size", "8",
                "--out", dir.resolve("x.bin").toString());
        assertFalse(Files.exists(dir.resolve("x.bin")));
        // a write that fails says why, without the temporary file's name or an exception class
        Path nowhere = dir.resolve("no-such-dir").resolve("x.safetensors");
        refused(List.of(nowhere.toString(), "does not exist"), "init", "--layers", "1", "--embd", "16", "--head-size", "8",
                "--vocab", "256", "--out", nowhere.toString());
    }

    // --- item 7: init sizes ----------------------------------------------------------------------------------------

    @Test
    void initRefusesNonsenseAndAbsurdSizesUpFront() {
        String out = dir.resolve("m.safetensors").toString();
        refused(List.of("--layers -1"), "init", "--layers", "-1", "--embd", "64", "--out", out);
        refused(List.of("--layers 0"), "init", "--layers", "0", "--embd", "64", "--out", out);
        refused(List.of("--head-size 0"), "init", "--layers", "1", "--embd", "64", "--head-size", "0", "--out", out);
        refused(List.of("--embd -64"), "init", "--layers", "1", "--embd", "-64", "--out", out);
        refused(List.of("--vocab 0"), "init", "--layers", "1", "--embd", "64", "--vocab", "0", "--out", out);
        refused(List.of("not a multiple"), "init", "--layers", "1", "--embd", "65", "--out", out);
        refused(List.of("--memory-heads must be 0..1", "got 2"), "init", "--layers", "1", "--embd", "64", "--memory-heads", "2", "--out", out);
        refused(List.of("--memory-channels must be 0..64", "got 65"), "init", "--layers", "1", "--embd", "64", "--memory-channels", "65", "--out", out);
        // would need tens of GB: refused with the parameter count and the memory, before allocating
        refused(List.of("--layers 100000", "parameters", "GB of Java heap"), "init", "--layers", "100000", "--embd", "64", "--out", out);
        refused(List.of("--embd 1000000", "emb.weight", "more than one Java array"), "init", "--layers", "1", "--embd", "1000000", "--out", out);
        refused(List.of("--layers 2147483647", "GB of Java heap"), "init", "--layers", "2147483647", "--embd", "64", "--out", out);
        assertFalse(Files.exists(dir.resolve("m.safetensors")));
    }

    // --- item 7: forward options ---------------------------------------------------------------------------------

    @Test
    void forwardRefusesNonsenseOptions() throws Exception {
        Path model = EvalTestModels.write(dir.resolve("m.safetensors"), 3);
        String m = model.toString();
        refused(List.of("--top -1"), "forward", "--model", m, "--tokens", "1,2", "--top", "-1");
        refused(List.of("--text is empty"), "forward", "--model", m, "--text", "");
        refused(List.of("--tokens", "'-1' at position 1"), "forward", "--model", m, "--tokens", "5,-1");
        refused(List.of("--tokens", "256", "outside the vocabulary", "m.safetensors"), "forward", "--model", m, "--tokens", "1,256");
        refused(List.of("--tokens is empty"), "forward", "--model", m, "--tokens", " ");
        refused(List.of("--tokens", "empty entry at position 1"), "forward", "--model", m, "--tokens", "1,,2");
        refused(List.of("--chunk-len 0"), "forward", "--model", m, "--tokens", "1", "--chunk-len", "0");
        for (String eps : new String[]{"Infinity", "NaN", "0", "-1e-5"}) {
            // NaN and Infinity are refused by the number converter of every option, 0 and negatives by --gn-eps's own check
            String why = eps.equals("Infinity") || eps.equals("NaN") ? "expected a finite number, got '" + eps + "'" : "positive finite";
            refused(List.of("--gn-eps", why), "forward", "--model", m, "--tokens", "1,2", "--gn-eps", eps);
            refused(List.of("--gn-eps", why), "debug", "dump", "--model", m, "--tokens", "1,2", "--gn-eps", eps,
                    "--out", dir.resolve("d.safetensors").toString());
            refused(List.of("--gn-eps", why), "generate", "--model", m, "--prompt", "ab", "--gn-eps", eps);
        }
        // a single token is a valid input (no loss position); token 0 too
        CliTestSupport.Run one = ok("forward", "--model", m, "--tokens", "0");
        assertFalse(one.out().contains("mean loss"), one.out());
    }

    @Test
    void forwardTakesATokenizerAndItsHelpSaysSo() throws Exception {
        CliTestSupport.Run help = ok("forward", "--help");
        assertTrue(help.out().contains(".pth") && help.out().contains("--tokenizer"), help.out());
        assertFalse(help.out().contains("lands"), help.out());
        Path model = EvalTestModels.write(dir.resolve("m.safetensors"), 3);
        CliTestSupport.Run bytes = ok("forward", "--model", model.toString(), "--text", "ab", "--tokenizer", "bytes");
        CliTestSupport.Run ids = ok("forward", "--model", model.toString(), "--tokens", "97,98");
        assertEquals(ids.out(), bytes.out());
        Path vocab = CliTestSupport.oracle("rwkv_vocab_v20230424.txt");
        refused(List.of("vocabulary of 65536", "256"), "forward", "--model", model.toString(), "--text", "ab", "--tokenizer", "world:" + vocab);
        refused(List.of("--tokenizer applies to --text"), "forward", "--model", model.toString(), "--tokens", "1", "--tokenizer", "bytes");
    }

    @Test
    void tokenizeReadsABoundedAmountOfStdin() throws Exception {
        java.io.InputStream endless = new java.io.InputStream() {
            @Override public int read() { return 0; }
            @Override public int read(byte[] b, int off, int len) { java.util.Arrays.fill(b, off, off + len, (byte) 0); return len; }
        };
        IllegalArgumentException e = org.junit.jupiter.api.Assertions.assertThrows(IllegalArgumentException.class,
                () -> TokenizeCommand.readBounded(endless, 1_000_000));
        assertTrue(e.getMessage().startsWith("stdin: more than 1,000,000 bytes"), e.getMessage());
        assertArrayEquals(new byte[]{1, 2, 3}, TokenizeCommand.readBounded(new java.io.ByteArrayInputStream(new byte[]{1, 2, 3}), 3));
    }

    // --- item 4: a tuned state stored in the model file ------------------------------------------------------------

    private static HostTensor[] randomStates(int layers, int heads, int n, long seed) {
        Random rnd = new Random(seed);
        HostTensor[] s = new HostTensor[layers];
        for (int l = 0; l < layers; l++) {
            s[l] = HostTensor.zeros(heads, n, n);
            for (int i = 0; i < s[l].size(); i++) s[l].data()[i] = (float) rnd.nextGaussian();
        }
        return s;
    }

    /** The model's output lines without the first one, which names the model file. */
    private static String predictions(CliTestSupport.Run r) {
        return r.out().substring(r.out().indexOf('\n') + 1);
    }

    @Test
    void aTunedStateStoredInTheModelIsUsedAndSaidSo() throws Exception {
        Path plain = EvalTestModels.write(dir.resolve("plain.safetensors"), 5);
        ModelConfig cfg = ModelConfig.forInit(2, 32, 16, 256);
        HostTensor[] kv = randomStates(cfg.nLayer(), cfg.nHead(), cfg.headSize(), 9);   // [head][key][value]
        Path stateFile = dir.resolve("state.pth");
        StateFile.save(stateFile, kv, PthWriter.Dtype.FP32);
        // what state-tune --merge-into writes: the model plus blocks.N.att.time_state in [head][value][key]
        Map<String, HostTensor> merged = new LinkedHashMap<>(Safetensors.readTensors(plain));
        merged.putAll(StateFile.toFileTensors(kv));
        Path withState = dir.resolve("tuned.pth");
        PthWriter.write(withState, merged, PthWriter.Dtype.FP32);

        String tokens = "72,101,108,108,111,32,119";
        CliTestSupport.Run byFile = ok("forward", "--model", plain.toString(), "--tokens", tokens, "--state", stateFile.toString());
        CliTestSupport.Run zeros = ok("forward", "--model", plain.toString(), "--tokens", tokens);
        CliTestSupport.Run stored = ok("forward", "--model", withState.toString(), "--tokens", tokens);
        assertTrue(stored.err().contains("using the tuned state stored in " + withState + " (blocks.*.att.time_state)"), stored.err());
        assertEquals(predictions(byFile), predictions(stored));
        assertNotEquals(predictions(zeros), predictions(stored));
        CliTestSupport.Run overridden = ok("forward", "--model", withState.toString(), "--tokens", tokens, "--state", "zeros");
        assertFalse(overridden.err().contains("tuned state"), overridden.err());
        assertEquals(predictions(zeros), predictions(overridden));
        CliTestSupport.Run explicit = ok("forward", "--model", withState.toString(), "--tokens", tokens, "--state", stateFile.toString());
        assertEquals(predictions(byFile), predictions(explicit));

        // debug dump: the same logits as with the state file
        Path d1 = dir.resolve("d1.safetensors"), d2 = dir.resolve("d2.safetensors");
        ok("debug", "dump", "--model", plain.toString(), "--tokens", tokens, "--state", stateFile.toString(), "--out", d1.toString());
        CliTestSupport.Run dump = ok("debug", "dump", "--model", withState.toString(), "--tokens", tokens, "--out", d2.toString());
        assertTrue(dump.err().contains("using the tuned state stored in"), dump.err());
        assertArrayEquals(Safetensors.readTensors(d1).get("logits").data(), Safetensors.readTensors(d2).get("logits").data());

        // generate (and chat and eval, which load models the same way)
        String[] gen = {"--prompt", "Hello", "--temperature", "0", "--max-tokens", "12"};
        CliTestSupport.Run g1 = ok(concat(new String[]{"generate", "--model", plain.toString(), "--state", stateFile.toString()}, gen));
        CliTestSupport.Run g2 = ok(concat(new String[]{"generate", "--model", withState.toString()}, gen));
        assertTrue(g2.err().contains("using the tuned state stored in"), g2.err());
        assertEquals(g1.out(), g2.out());

        // inspect: says it has a tuned state and does not count it as parameters
        CliTestSupport.Run a = ok("inspect", plain.toString()), b = ok("inspect", withState.toString());
        String params = a.out().lines().filter(l -> l.startsWith("parameters:")).findFirst().orElseThrow();
        assertTrue(b.out().contains(params.replace(" tensors", " tensors")), b.out());
        long stateValues = 2L * cfg.nHead() * cfg.headSize() * cfg.headSize();
        assertTrue(b.out().contains(String.format("tuned state:  %,d values in 2 tensors", stateValues)), b.out());
        assertFalse(a.out().contains("tuned state"), a.out());

        // a partial tuned state is refused naming the missing key
        merged.remove(StateFile.key(1));
        Path partial = dir.resolve("partial.safetensors");
        Safetensors.write(partial, merged, null);
        refused(List.of("partial.safetensors", "blocks.1.att.time_state"), "forward", "--model", partial.toString(), "--tokens", tokens);
    }

    private static String[] concat(String[] a, String[] b) {
        String[] out = Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, out, a.length, b.length);
        return out;
    }

    // --- item 5: rwkv.cpp .bin to the official formats ------------------------------------------------------------

    @Test
    void convertedRwkvCppFileRunsUnderTheOfficialEpsAsRwkvCppDoes() throws Exception {
        Path bin = CliTestSupport.oracle("tiny-rwkv-5v2-730K-FP32.bin");
        String tokens = "34,105,110,32,116,104,101,32,109,105,100,100,108,101";
        Path ref = dir.resolve("ref.safetensors");
        ok("debug", "dump", "--model", bin.toString(), "--tokens", tokens, "--gn-eps", "1e-5", "--out", ref.toString());
        float[] expected = Safetensors.readTensors(ref).get("logits").data();
        for (String name : new String[]{"c.pth", "c.safetensors"}) {
            Path converted = dir.resolve(name);
            String[] args = name.endsWith(".pth") ? new String[]{"convert", bin.toString(), converted.toString(), "--dtype", "fp32"}
                    : new String[]{"convert", bin.toString(), converted.toString()};
            CliTestSupport.Run c = ok(args);
            assertFalse(c.err().contains("note:"), "no eps note when the receptance is rescaled: " + c.err());
            if (name.endsWith(".safetensors")) {
                assertEquals(Double.toString(ModelConfig.OFFICIAL_GROUP_NORM_EPS), Safetensors.readMetadata(converted).get(Safetensors.GROUP_NORM_EPS_KEY));
            }
            Path d = dir.resolve("d-" + name + ".safetensors");
            ok("debug", "dump", "--model", converted.toString(), "--tokens", tokens, "--gn-eps", "64e-5", "--out", d.toString());
            float[] got = Safetensors.readTensors(d).get("logits").data();
            double max = 0;
            for (int i = 0; i < got.length; i++) max = Math.max(max, Math.abs(got[i] - expected[i]));
            assertTrue(max <= 1e-4, name + ": max |diff| " + max);
            // and without --gn-eps: what the file's format implies is the official eps
            Path d0 = dir.resolve("d0-" + name + ".safetensors");
            ok("debug", "dump", "--model", converted.toString(), "--tokens", tokens, "--out", d0.toString());
            assertArrayEquals(got, Safetensors.readTensors(d0).get("logits").data());
        }
        // --keep-receptance keeps the stored tensors, and then the note applies
        Path raw = dir.resolve("raw.pth");
        CliTestSupport.Run keep = ok("convert", bin.toString(), raw.toString(), "--dtype", "fp32", "--keep-receptance");
        assertTrue(keep.err().contains("note:") && keep.err().contains("--gn-eps 1.0E-5"), keep.err());
        assertArrayEquals(ModelFiles.load(bin).get("blocks.3.att.receptance.weight").data(),
                PthReader.readTensors(raw).get("blocks.3.att.receptance.weight").data());
        refused(List.of("OUT", "out.bin", ".safetensors"), "convert", bin.toString(), dir.resolve("out.bin").toString());
    }

    // --- items 6, 3 and 7: lora merge and adapter files ---------------------------------------------------------------

    private Path adapter(String name, Map<String, HostTensor> tensors, String json) throws Exception {
        Path f = dir.resolve(name + ".pth");
        PthWriter.write(f, tensors, PthWriter.Dtype.FP32);
        if (json != null) Files.writeString(dir.resolve(name + ".json"), json, StandardCharsets.UTF_8);
        return f;
    }

    private static HostTensor random(long seed, int... shape) {
        Random rnd = new Random(seed);
        HostTensor t = HostTensor.zeros(shape);
        for (int i = 0; i < t.size(); i++) t.data()[i] = (float) (0.1 * rnd.nextGaussian());
        return t;
    }

    private static Map<String, HostTensor> goodAdapter() {
        Map<String, HostTensor> a = new LinkedHashMap<>();
        a.put("blocks.0.att.key.lora_A", random(1, 4, 32));
        a.put("blocks.0.att.key.lora_B", random(2, 32, 4));
        a.put("blocks.1.ffn.value.lora_A", random(3, 4, 96));
        a.put("blocks.1.ffn.value.lora_B", random(4, 32, 4));
        return a;
    }

    @Test
    void loraMergeWritesTheFormatOfItsExtensionAndRefusesBadAdapters() throws Exception {
        Path base = EvalTestModels.write(dir.resolve("base.safetensors"), 7);
        String b = base.toString();
        Path good = adapter("good", goodAdapter(), "{\"r\": 4, \"alpha\": 8, \"targets\": \"att.key,ffn.value\"}");
        Path st = dir.resolve("m.safetensors"), pth = dir.resolve("m.pth");
        ok("lora", "merge", "--model", b, "--lora", good.toString(), "--out", st.toString());
        ok("lora", "merge", "--model", b, "--lora", good.toString(), "--out", pth.toString(), "--dtype", "fp32");
        assertTrue(isSafetensors(st), "m.safetensors is safetensors");
        assertTrue(isTorchZip(pth), "m.pth is a torch zip");
        // W += (alpha / r) B A
        Map<String, HostTensor> merged = Safetensors.readTensors(st), before = Safetensors.readTensors(base);
        HostTensor a = goodAdapter().get("blocks.0.att.key.lora_A"), bb = goodAdapter().get("blocks.0.att.key.lora_B");
        double expected = before.get("blocks.0.att.key.weight").data()[3 * 32 + 5];
        for (int k = 0; k < 4; k++) expected += 2.0 * bb.data()[3 * 4 + k] * a.data()[k * 32 + 5];
        assertEquals(expected, merged.get("blocks.0.att.key.weight").data()[3 * 32 + 5], 1e-5);
        assertArrayEquals(merged.get("blocks.0.att.key.weight").data(), PthReader.readTensors(pth).get("blocks.0.att.key.weight").data());
        // a tuned state stored in the base model survives the merge
        Map<String, HostTensor> withState = new LinkedHashMap<>(before);
        withState.putAll(StateFile.toFileTensors(randomStates(2, 2, 16, 4)));
        Path baseWithState = dir.resolve("base-with-state.safetensors");
        Safetensors.write(baseWithState, withState, null);
        Path mergedWithState = dir.resolve("m-with-state.pth");
        ok("lora", "merge", "--model", baseWithState.toString(), "--lora", good.toString(), "--out", mergedWithState.toString(), "--dtype", "fp32");
        Map<String, HostTensor> back = PthReader.readTensors(mergedWithState);
        assertArrayEquals(withState.get(StateFile.key(1)).data(), back.get(StateFile.key(1)).data());
        assertArrayEquals(merged.get("blocks.0.att.key.weight").data(), back.get("blocks.0.att.key.weight").data());
        refused(List.of("--out", "m.bin"), "lora", "merge", "--model", b, "--lora", good.toString(), "--out", dir.resolve("m.bin").toString());

        String out = dir.resolve("o.pth").toString();
        // alpha that is not finite, from the flag or the json
        for (String alpha : new String[]{"NaN", "Infinity", "-Infinity"}) {
            refused(List.of("--lora-alpha", "finite"), "lora", "merge", "--model", b, "--lora", good.toString(), "--lora-alpha", alpha, "--out", out);
        }
        Map<String, String> badJson = new LinkedHashMap<>();
        badJson.put("{\"r\": 4, \"alpha\": 1e999}", "finite");
        badJson.put("{\"r\": 4, \"alpha\": NaN}", "not valid JSON");
        badJson.put("{\"r\": 4}", "no key \"alpha\"");
        badJson.put("", "empty file");
        badJson.put("\u0000garbage{", "not valid JSON");
        badJson.put("{\"r\": 4, \"alpha\": null}", "\"alpha\" must be a number");
        badJson.put("{\"r\": 4, \"alpha\": \"8\"}", "\"alpha\" must be a number");
        badJson.put("[8]", "expected a JSON object");
        badJson.put("{\"r\": \"four\", \"alpha\": 8}", "\"r\" must be a number");
        int i = 0;
        for (Map.Entry<String, String> e : badJson.entrySet()) {
            Path f = adapter("bad" + i++, goodAdapter(), e.getKey());
            refused(List.of(f.getFileName().toString().replace(".pth", ".json"), e.getValue()),
                    "lora", "merge", "--model", b, "--lora", f.toString(), "--out", out);
        }
        // a missing or misspelled half of an adapter
        Map<String, HostTensor> noB = goodAdapter();
        noB.remove("blocks.1.ffn.value.lora_B");
        refused(List.of("blocks.1.ffn.value.lora_A", "blocks.1.ffn.value.lora_B"), "lora", "merge", "--model", b, "--lora",
                adapter("nob", noB, null).toString(), "--lora-alpha", "8", "--out", out);
        Map<String, HostTensor> misspelled = goodAdapter();
        misspelled.put("blocks.1.ffn.value.lora_b", misspelled.remove("blocks.1.ffn.value.lora_B"));
        refused(List.of("blocks.1.ffn.value.lora_b"), "lora", "merge", "--model", b, "--lora",
                adapter("typo", misspelled, null).toString(), "--lora-alpha", "8", "--out", out);
        Map<String, HostTensor> noA = goodAdapter();
        noA.remove("blocks.0.att.key.lora_A");
        refused(List.of("blocks.0.att.key.lora_B", "blocks.0.att.key.lora_A"), "lora", "merge", "--model", b, "--lora",
                adapter("noa", noA, null).toString(), "--lora-alpha", "8", "--out", out);
        // an adapter shaped for another model
        Map<String, HostTensor> wrongIn = goodAdapter();
        wrongIn.put("blocks.0.att.key.lora_A", random(5, 4, 64));
        refused(List.of("blocks.0.att.key.lora_A", "[4, 64]", "[r, 32]"), "lora", "merge", "--model", b, "--lora",
                adapter("wrongin", wrongIn, null).toString(), "--lora-alpha", "8", "--out", out);
        // non-finite adapter values would make the merged weights non-finite
        Map<String, HostTensor> nan = goodAdapter();
        nan.get("blocks.1.ffn.value.lora_B").data()[7] = Float.NaN;
        refused(List.of("blocks.1.ffn.value.lora_B", "NaN at index 7"), "lora", "merge", "--model", b, "--lora",
                adapter("nan", nan, null).toString(), "--lora-alpha", "8", "--out", out);
        // an extra tensor with the right number of values but the wrong shape
        Map<String, HostTensor> extra = goodAdapter();
        extra.put("blocks.0.att.time_mix_k", random(6, 32));
        refused(List.of("blocks.0.att.time_mix_k", "[32]", "[1, 1, 32]"), "lora", "merge", "--model", b, "--lora",
                adapter("extra", extra, null).toString(), "--lora-alpha", "8", "--out", out);
        assertFalse(Files.exists(Path.of(out)));

        // inspect recognises an adapter
        CliTestSupport.Run insp = ok("inspect", good.toString());
        assertTrue(insp.out().contains("LoRA adapter") && insp.out().contains("rank 4") && insp.out().contains("att.key")
                && insp.out().contains("ffn.value") && insp.out().contains(String.format("%,d LoRA parameters", 4 * 32 + 32 * 4 + 4 * 96 + 32 * 4)),
                insp.out());
        assertFalse(insp.out().contains("not an RWKV-5.2"), insp.out());
    }

    // --- item 8: shapes that do not fit are reported with the file and tensor -----------------------------------------

    /** These reached users as "error: matmul shapes: ..." and "error: copy: sizes differ ..." without file or tensor. */
    @Test
    void anAdapterShapedForAnotherModelIsRefusedNamingTheFileAndTensor() throws Exception {
        Path base = EvalTestModels.write(dir.resolve("base.safetensors"), 7);
        String out = dir.resolve("o.pth").toString();
        Map<String, HostTensor> wrongOut = goodAdapter();
        wrongOut.put("blocks.0.att.key.lora_B", random(8, 48, 4));
        CliTestSupport.Run r = refused(List.of("wrongout.pth", "blocks.0.att.key.lora_B", "[48, 4]", "[32, r]"), "lora", "merge",
                "--model", base.toString(), "--lora", adapter("wrongout", wrongOut, null).toString(), "--lora-alpha", "8", "--out", out);
        assertFalse(r.err().contains("matmul"), r.err());
        Map<String, HostTensor> extra = goodAdapter();
        extra.put("blocks.1.att.ln_x.weight", random(9, 16));
        r = refused(List.of("extra16.pth", "blocks.1.att.ln_x.weight", "[16]", "[32]"), "lora", "merge",
                "--model", base.toString(), "--lora", adapter("extra16", extra, null).toString(), "--lora-alpha", "8", "--out", out);
        assertFalse(r.err().contains("sizes differ"), r.err());
    }

    @Test
    void aStateFileForAnotherModelIsRefusedNamingTheTensor() throws Exception {
        Path model = EvalTestModels.write(dir.resolve("m.safetensors"), 3);
        Path state = dir.resolve("other.pth");
        StateFile.save(state, randomStates(2, 4, 8, 1), PthWriter.Dtype.FP32);
        refused(List.of("other.pth", "blocks.0.att.time_state", "[4, 8, 8]", "[2, 16, 16]"),
                "forward", "--model", model.toString(), "--tokens", "1,2", "--state", state.toString());
        refused(List.of("s.bin", "not found"), "forward", "--model", model.toString(), "--tokens", "1", "--state", dir.resolve("s.bin").toString());
    }
}
