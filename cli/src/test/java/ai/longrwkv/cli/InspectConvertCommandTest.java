package ai.longrwkv.cli;

import ai.longrwkv.core.io.Float16;
import ai.longrwkv.core.io.ModelFiles;
import ai.longrwkv.core.io.ModelFormatException;
import ai.longrwkv.core.io.Safetensors;
import ai.longrwkv.core.io.pth.PthReader;
import ai.longrwkv.core.io.pth.PthWriter;
import ai.longrwkv.core.model.ModelConfig;
import ai.longrwkv.core.model.ModelWeights;
import ai.longrwkv.core.tensor.HostTensor;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.zip.CRC32;
import java.util.zip.ZipEntry;
import java.util.zip.ZipOutputStream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/** The inspect and convert commands, run as the command line runs them. */
class InspectConvertCommandTest {
    @TempDir
    Path tmp;

    record Run(int exitCode, String out, String err) {}

    /**
     * Runs a command the way LongRwkv.execute does: user errors (ModelFormatException, IllegalArgumentException,
     * I/O errors) become one line "error: ..." and exit code 2.
     */
    private static Run run(Object command, String... args) {
        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
        CommandLine cl = new CommandLine(command);
        cl.setOut(new PrintWriter(out, true));
        cl.setErr(new PrintWriter(err, true));
        cl.setExecutionExceptionHandler((ex, commandLine, parseResult) -> {
            if (ex instanceof ModelFormatException || ex instanceof IllegalArgumentException
                    || ex instanceof IOException || ex instanceof UncheckedIOException) {
                commandLine.getErr().println("error: " + ex.getMessage());
                return 2;
            }
            throw ex;
        });
        int code = cl.execute(args);
        return new Run(code, out.toString(), err.toString());
    }

    private static Run ok(Object command, String... args) {
        Run r = run(command, args);
        assertEquals(0, r.exitCode, "exit code; stderr: " + r.err + "\nstdout: " + r.out);
        return r;
    }

    private static Run refused(Object command, String expected, String... args) {
        Run r = run(command, args);
        assertEquals(2, r.exitCode, "exit code; stderr: " + r.err + "\nstdout: " + r.out);
        assertTrue(r.err.startsWith("error: "), "one error line: " + r.err);
        assertTrue(r.err.contains(expected), "error mentions '" + expected + "': " + r.err);
        return r;
    }

    /** shared/oracle/NAME found by walking up from the working directory; the test is skipped when it is absent. */
    private static Path oracle(String name) {
        return ai.longrwkv.core.testing.TestModels.oracle(name);
    }

    @Test
    void inspectShowsArchitectureDimensionsAndSizes() {
        Path bin = oracle("tiny-rwkv-5v2-730K-FP32.bin");
        ModelConfig cfg = ModelConfig.fromWeights(ModelFiles.load(bin), 1e-5);
        Run r = ok(new InspectCommand(), bin.toString());
        assertTrue(r.out.contains("rwkv.cpp"), r.out);
        assertTrue(r.out.contains("architecture: RWKV-5.2 (x052)"), r.out);
        assertTrue(r.out.contains(String.format("L=%d C=%d H=%d N=%d F=%d V=%d", cfg.nLayer(), cfg.nEmbd(), cfg.nHead(),
                cfg.headSize(), cfg.dimFfn(), cfg.vocabSize())), r.out);
        assertTrue(r.out.contains(String.format("%,d", cfg.parameterCount())), r.out);
        assertTrue(r.out.contains("stores FP32"), r.out);
    }

    @Test
    void convertRoundTripsThroughPthAndSafetensors() throws IOException {
        Path bin = oracle("tiny-rwkv-5v2-730K-FP32.bin");
        ModelWeights original = ModelFiles.load(bin);
        Path bf16 = tmp.resolve("model.pth");
        Path st = tmp.resolve("model.safetensors");
        Path fp32 = tmp.resolve("model-fp32.pt");
        Path fp16 = tmp.resolve("model-fp16.pth");

        // --keep-receptance: the tensors as stored (by default att.receptance.weight is multiplied by 8 for eps 64e-5;
        // NothingWrongPassesSilentlyTest covers that)
        Run toPth = ok(new ConvertCommand(), bin.toString(), bf16.toString(), "--keep-receptance");
        assertTrue(toPth.out.contains("wrote " + bf16 + " (.pth bf16)"), toPth.out);
        assertTrue(toPth.err.contains("--gn-eps 1.0E-5"), "tells that .pth cannot carry rwkv.cpp's eps: " + toPth.err);
        ModelWeights w = PthReader.read(bf16);
        assertEquals(original.keys(), w.keys());
        for (String key : original.keys()) {
            assertEquals("BF16", w.entries().get(key).dtype(), key);
            float[] want = original.get(key).data().clone();
            for (int i = 0; i < want.length; i++) want[i] = Float16.bf16ToFloat(Float16.floatToBf16(want[i]));
            assertArrayEquals(want, w.get(key).data(), key);
        }

        Run inspect = ok(new InspectCommand(), bf16.toString(), "--tensors");
        assertTrue(inspect.out.contains("PyTorch zip checkpoint"), inspect.out);
        assertTrue(inspect.out.contains("architecture: RWKV-5.2 (x052)"), inspect.out);
        assertTrue(inspect.out.contains("BF16 x " + original.keys().size()), inspect.out);
        assertTrue(inspect.out.contains("blocks.11.ffn.value.weight"), "--tensors lists the tensors: " + inspect.out);

        ok(new ConvertCommand(), bf16.toString(), st.toString());
        Map<String, HostTensor> fromSt = Safetensors.readTensors(st);
        for (String key : original.keys()) assertArrayEquals(w.get(key).data(), fromSt.get(key).data(), key);
        Run inspectSt = ok(new InspectCommand(), st.toString());
        assertTrue(inspectSt.out.contains("safetensors") && inspectSt.out.contains("F32 x "), inspectSt.out);

        ok(new ConvertCommand(), st.toString(), fp32.toString(), "--dtype", "fp32");
        ModelWeights back = PthReader.read(fp32);
        for (String key : original.keys()) {
            assertEquals("F32", back.entries().get(key).dtype());
            assertArrayEquals(w.get(key).data(), back.get(key).data(), key);
        }
        ok(new ConvertCommand(), bin.toString(), fp16.toString(), "--dtype", "FP16");
        assertEquals("F16", PthReader.read(fp16).entries().get("emb.weight").dtype());

        // rwkv.cpp -> safetensors with --keep-receptance keeps the eps in the metadata, and the values exactly
        Path st2 = tmp.resolve("from-bin.safetensors");
        ok(new ConvertCommand(), bin.toString(), st2.toString(), "--keep-receptance");
        assertEquals("1.0E-5", Safetensors.readMetadata(st2).get(Safetensors.GROUP_NORM_EPS_KEY));
        Map<String, HostTensor> exact = Safetensors.readTensors(st2);
        for (String key : original.keys()) assertArrayEquals(original.get(key).data(), exact.get(key).data(), key);
    }

    @Test
    void inspectReadsOnlyShapes() throws IOException {
        // damage the tensor data: inspect still works (it never reads data), loading the tensor does not
        Map<String, HostTensor> t = new LinkedHashMap<>();
        HostTensor ones = HostTensor.zeros(2, 4, 4);
        java.util.Arrays.fill(ones.data(), 1f);
        t.put("blocks.0.att.time_state", ones);
        t.put("blocks.1.att.time_state", HostTensor.zeros(2, 4, 4));
        Path f = tmp.resolve("state.pth");
        PthWriter.write(f, t, PthWriter.Dtype.BF16);
        byte[] b = Files.readAllBytes(f);
        int at = indexOf(b, new byte[]{(byte) 0x80, 0x3f, (byte) 0x80, 0x3f, (byte) 0x80, 0x3f, (byte) 0x80, 0x3f}); // bf16 1.0 x 4
        b[at + 5] ^= 1;
        Files.write(f, b);
        ModelWeights damaged = PthReader.read(f);
        try {
            damaged.get("blocks.0.att.time_state");
            fail("damaged data must not load");
        } catch (ModelFormatException expected) {
            assertTrue(expected.getMessage().contains("CRC"), expected.getMessage());
        }
        Run r = ok(new InspectCommand(), f.toString());
        assertTrue(r.out.contains("x052 state (att.time_state for 2 layers, H=2 N=4)"), r.out);
        assertTrue(r.out.contains("64 in 2 tensors"), r.out);
    }

    @Test
    void inspectNamesOtherArchitectures() {
        Map<String, HostTensor> v6 = new LinkedHashMap<>();
        v6.put("emb.weight", HostTensor.zeros(16, 8));
        v6.put("blocks.0.ln1.weight", HostTensor.zeros(8));
        v6.put("blocks.0.att.time_maa_x", HostTensor.zeros(1, 1, 8));
        v6.put("blocks.0.att.time_decay", HostTensor.zeros(1, 1, 8));
        Path f = tmp.resolve("v6.pth");
        PthWriter.write(f, v6, PthWriter.Dtype.FP16);
        Run r = ok(new InspectCommand(), f.toString());
        assertTrue(r.out.contains("architecture: not an RWKV-5.2 (x052) model: found RWKV-6"), r.out);
        assertTrue(r.out.contains("F16 x 4"), r.out);
    }

    @Test
    void userErrorsAreOneLine() throws IOException {
        Path bin = oracle("tiny-rwkv-5v2-730K-FP32.bin");
        refused(new ConvertCommand(), ".pth, .pt or .safetensors", bin.toString(), tmp.resolve("out.txt").toString());
        refused(new ConvertCommand(), "safetensors output is always F32", bin.toString(), tmp.resolve("o.safetensors").toString(),
                "--dtype", "bf16");
        refused(new ConvertCommand(), "unknown dtype 'int8'", bin.toString(), tmp.resolve("o.pth").toString(), "--dtype", "int8");
        refused(new ConvertCommand(), "not found", tmp.resolve("missing.pth").toString(), tmp.resolve("o.pth").toString());
        refused(new InspectCommand(), "not found", tmp.resolve("missing.pth").toString());
        Path junk = Files.writeString(tmp.resolve("junk.pth"), "not a model at all");
        refused(new InspectCommand(), "unrecognised file format", junk.toString());
        assertFalse(Files.exists(tmp.resolve("o.pth")), "nothing written on errors");

        // a checkpoint whose pickle would run os.system: refused, nothing runs
        Path marker = tmp.resolve("pwned");
        Path hostile = tmp.resolve("hostile.pth");
        writeStoredZip(hostile, Map.of("archive/data.pkl", osSystemPickle("touch " + marker), "archive/version", "3\n".getBytes(StandardCharsets.US_ASCII)));
        refused(new InspectCommand(), "os.system", hostile.toString());
        refused(new ConvertCommand(), "os.system", hostile.toString(), tmp.resolve("o.safetensors").toString());
        assertFalse(Files.exists(marker));
    }

    @Test
    void helpSaysWhatDtypeAppliesTo() {
        String help = ok(new ConvertCommand(), "--help").out.replaceAll("\\s+", " "); // undo picocli's line wrapping
        assertTrue(help.contains("safetensors output is always F32"), help);
        assertTrue(help.contains(".pth output is bf16 by default"), help);
    }

    @Test
    void registeredInLongRwkv() {
        CommandLine root = new CommandLine(new LongRwkv());
        Assumptions.assumeTrue(root.getSubcommands().containsKey("inspect") && root.getSubcommands().containsKey("convert"),
                "inspect/convert are not registered in LongRwkv yet");
        Path bin = oracle("tiny-rwkv-5v2-730K-FP32.bin");
        assertEquals(0, LongRwkv.execute("inspect", bin.toString()));
        assertEquals(2, LongRwkv.execute("convert", bin.toString(), tmp.resolve("x.txt").toString()));
    }

    private static int indexOf(byte[] haystack, byte[] needle) {
        for (int i = 0; i + needle.length <= haystack.length; i++) {
            if (java.util.Arrays.equals(haystack, i, i + needle.length, needle, 0, needle.length)) return i;
        }
        throw new AssertionError("pattern not found");
    }

    /** PROTO 2, GLOBAL os.system, (command,), REDUCE, STOP: what a malicious "checkpoint" looks like. */
    private static byte[] osSystemPickle(String command) {
        ByteArrayOutputStream p = new ByteArrayOutputStream();
        p.write(0x80);
        p.write(2);
        p.writeBytes("cos\nsystem\n".getBytes(StandardCharsets.US_ASCII));
        byte[] c = command.getBytes(StandardCharsets.UTF_8);
        p.write('X');
        for (int i = 0; i < 4; i++) p.write((c.length >>> (8 * i)) & 0xff);
        p.writeBytes(c);
        p.write(0x85); // TUPLE1
        p.write('R');
        p.write('.');
        return p.toByteArray();
    }

    private static void writeStoredZip(Path file, Map<String, byte[]> records) throws IOException {
        try (ZipOutputStream z = new ZipOutputStream(Files.newOutputStream(file))) {
            for (Map.Entry<String, byte[]> r : new java.util.TreeMap<>(records).entrySet()) {
                ZipEntry e = new ZipEntry(r.getKey());
                e.setMethod(ZipEntry.STORED);
                e.setSize(r.getValue().length);
                CRC32 crc = new CRC32();
                crc.update(r.getValue());
                e.setCrc(crc.getValue());
                z.putNextEntry(e);
                z.write(r.getValue());
                z.closeEntry();
            }
        } catch (IOException e) {
            fail(e);
        }
    }
}
