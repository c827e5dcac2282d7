package ai.longrwkv.core.io.pth;

import ai.longrwkv.core.io.ModelFiles;
import ai.longrwkv.core.io.ModelFormatException;
import ai.longrwkv.core.io.Safetensors;
import ai.longrwkv.core.model.ModelWeights;
import ai.longrwkv.core.tensor.HostTensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.api.function.Executable;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Random;
import java.util.zip.ZipEntry;
import java.util.zip.ZipOutputStream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * Damaged and hostile files: each must give a clear ModelFormatException naming the file, never an OutOfMemoryError,
 * a hang, another exception, or (for pickles naming other globals) anything being run.
 */
class PthHostileFilesTest {
    @TempDir
    Path tmp;

    // --- zip level ------------------------------------------------------------------------------------------------

    @Test
    void truncatedFilesAreRefused() throws IOException {
        Path good = tmp.resolve("good.pth");
        PthWriter.write(good, PthTorchInteropTest.awkwardTensors(5), PthWriter.Dtype.BF16);
        byte[] bytes = Files.readAllBytes(good);
        for (int length : new int[]{1, 3, 4, 10, 30, 64, 100, bytes.length / 2, bytes.length - 100, bytes.length - 23,
                bytes.length - 22, bytes.length - 1}) {
            Path cut = Files.write(tmp.resolve("cut-" + length + ".pth"), Arrays.copyOf(bytes, length));
            refused(() -> ModelFiles.load(cut), cut);
            refused(() -> PthReader.read(cut), cut);
        }
        Path empty = Files.write(tmp.resolve("empty.pth"), new byte[0]);
        refused(() -> PthReader.read(empty), empty, "empty");
        refused(() -> PthReader.read(tmp), tmp, "directory");
        refused(() -> PthReader.read(tmp.resolve("missing.pth")), tmp.resolve("missing.pth"), "not found");
    }

    @Test
    void storageDeclaredBeyondTheFileIsRefused() throws IOException {
        // the pickle says 10^12 values, the record holds 16 bytes
        Path f = archive("huge-storage.pth", tensorPickle("w", "FloatStorage", 1_000_000_000_000L, 0, new long[]{4}, new long[]{1}),
                Map.of("0", new byte[16]));
        refused(() -> PthReader.read(f), f, "declares 1000000000000", "holds only 16 bytes");

        // the zip directory says the record is ~4 GB
        Path g = tmp.resolve("huge-record.pth");
        PthWriter.write(g, Map.of("w", HostTensor.zeros(4)), PthWriter.Dtype.FP32);
        byte[] b = Files.readAllBytes(g);
        int central = lastIndexOf(b, new byte[]{'P', 'K', 1, 2}, "archive/data/0");
        ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN).putInt(central + 20, 0xfffffff0).putInt(central + 24, 0xfffffff0);
        Files.write(g, b);
        refused(() -> PthReader.read(g), g, "archive/data/0", "declares 4294967280 bytes");
    }

    @Test
    void compressedEncryptedAndOddArchivesAreRefused() throws IOException {
        byte[] pickle = tensorPickle("w", "FloatStorage", 4, 0, new long[]{4}, new long[]{1});
        Path deflated = tmp.resolve("deflated.pth");
        try (ZipOutputStream z = new ZipOutputStream(Files.newOutputStream(deflated))) {
            z.putNextEntry(new ZipEntry("m/data.pkl"));
            z.write(pickle);
            z.putNextEntry(new ZipEntry("m/data/0"));
            z.write(new byte[16]);
        }
        refused(() -> PthReader.read(deflated), deflated, "compressed", "deflate", "m/data.pkl");

        Path noPickle = tmp.resolve("nopickle.pth");
        PthWriter.writeAtomically(noPickle, zip -> zip.record("archive/other", new byte[3]), false);
        refused(() -> PthReader.read(noPickle), noPickle, "no 'archive/data.pkl'");

        Path bigEndian = tmp.resolve("bigendian.pth");
        PthWriter.writeAtomically(bigEndian, zip -> {
            zip.record("archive/data.pkl", pickle);
            zip.record("archive/byteorder", "big".getBytes(StandardCharsets.US_ASCII));
            zip.record("archive/data/0", new byte[16]);
        }, false);
        refused(() -> PthReader.read(bigEndian), bigEndian, "'big'", "little-endian");

        Path missingStorage = archive("missing-storage.pth", pickle, Map.of());
        refused(() -> PthReader.read(missingStorage), missingStorage, "no record 'archive/data/0'");

        Path legacy = Files.write(tmp.resolve("legacy.pth"), new byte[]{(byte) 0x80, 2, (byte) 0x8a, 10, 0x6c, (byte) 0xfc});
        refused(() -> PthReader.read(legacy), legacy, "legacy");

        Path notZip = Files.writeString(tmp.resolve("text.pth"), "hello, this is not a checkpoint");
        refused(() -> PthReader.read(notZip), notZip, "not a PyTorch zip checkpoint");
    }

    @Test
    void damagedDataIsDetectedByItsCrc() throws IOException {
        Path f = tmp.resolve("crc.pth");
        PthWriter.write(f, Map.of("w", HostTensor.zeros(1000)), PthWriter.Dtype.FP32);
        byte[] b = Files.readAllBytes(f);
        b[b.length / 2] ^= 0x10; // inside the 4000 data bytes
        Files.write(f, b);
        ModelWeights w = PthReader.read(f); // shapes are still fine
        refused(() -> w.get("w"), f, "CRC-32", "damaged");
    }

    // --- pickle level ---------------------------------------------------------------------------------------------

    @Test
    void otherGlobalsAreRefusedAndNothingRuns() throws IOException {
        Path marker = tmp.resolve("pwned");
        byte[] system = new PickleWriter().proto2().global("os", "system")
                .mark().string("touch " + marker).tupleFromMark().reduce().stop().toByteArray();
        Path f = archive("os-system.pth", system, Map.of());
        refused(() -> PthReader.read(f), f, "refusing pickle global 'os.system'", "archive/data.pkl");
        refused(() -> ModelFiles.load(f), f, "os.system");
        assertFalse(Files.exists(marker), "nothing in the pickle was executed");

        // protocol 4 spelling: STACK_GLOBAL builtins.eval
        ByteArrayOutputStream p = new ByteArrayOutputStream();
        p.write(new byte[]{(byte) 0x80, 4});
        shortString(p, "builtins");
        shortString(p, "eval");
        p.write(0x93);
        shortString(p, "__import__('os').system('touch " + marker + "')");
        p.write(new byte[]{(byte) 0x85, 'R', '.'});
        Path g = archive("eval.pth", p.toByteArray(), Map.of());
        refused(() -> PthReader.read(g), g, "builtins.eval");
        assertFalse(Files.exists(marker));

        Path longStorage = archive("long-storage.pth", tensorPickle("w", "LongStorage", 4, 0, new long[]{4}, new long[]{1}),
                Map.of("0", new byte[32]));
        refused(() -> PthReader.read(longStorage), longStorage, "torch.LongStorage", "not supported");
    }

    @Test
    void unknownOpcodesAndBrokenPicklesAreRefused() throws IOException {
        pickleRefused("unknown-opcode.pth", new byte[]{(byte) 0x80, 2, 'i', 'o', 's', '\n'}, "unsupported pickle opcode 0x69 ('i')");
        pickleRefused("opcode-ff.pth", new byte[]{(byte) 0x80, 2, (byte) 0xff}, "unsupported pickle opcode 0xff");
        pickleRefused("no-stop.pth", new byte[]{(byte) 0x80, 2, '}'}, "without a STOP");
        pickleRefused("empty-pickle.pth", new byte[0], "without a STOP");
        pickleRefused("cut-string.pth", new byte[]{(byte) 0x80, 2, 'X', (byte) 0xff, (byte) 0xff, (byte) 0xff, 0x7f, 'a'}, "truncated");
        pickleRefused("underflow.pth", new byte[]{(byte) 0x80, 2, 's', '.'}, "stack underflow");
        pickleRefused("bad-memo.pth", new byte[]{(byte) 0x80, 2, 'h', 5, '.'}, "memo entry 5");
        pickleRefused("protocol9.pth", new byte[]{(byte) 0x80, 9, '}', '.'}, "protocol 9");
        pickleRefused("not-a-dict.pth", new byte[]{(byte) 0x80, 2, 'K', 7, '.'}, "expected a dict of tensors");
        pickleRefused("not-a-tensor.pth", new byte[]{(byte) 0x80, 2, '}', 'X', 1, 0, 0, 0, 'k', 'K', 7, 's', '.'}, "'k' holds 7, not a tensor");

        // a million nested tuples: no recursion anywhere, so no StackOverflowError
        byte[] nested = new byte[3 + 1_000_000 + 1];
        nested[0] = (byte) 0x80;
        nested[1] = 2;
        nested[2] = ')';
        Arrays.fill(nested, 3, nested.length - 1, (byte) 0x85);
        nested[nested.length - 1] = '.';
        pickleRefused("nested.pth", nested, "a tuple of 1, expected a dict");

        // two million empty tuples on the stack: bounded
        byte[] wide = new byte[2 + 2_000_000 + 1];
        wide[0] = (byte) 0x80;
        wide[1] = 2;
        Arrays.fill(wide, 2, wide.length - 1, (byte) ')');
        wide[wide.length - 1] = '.';
        pickleRefused("wide.pth", wide, "stack exceeds");
    }

    @Test
    void impossibleShapesAreRefused() throws IOException {
        byte[] data = new byte[64];
        viewRefused("overflow.pth", 16, 0, new long[]{65536, 65536}, new long[]{65536, 1}, data, "more than one Java array can hold");
        viewRefused("negative.pth", 16, 0, new long[]{-1, 4}, new long[]{4, 1}, data, "invalid shape [-1, 4]");
        viewRefused("negative-stride.pth", 16, 0, new long[]{4}, new long[]{-1}, data, "negative stride");
        viewRefused("negative-offset.pth", 16, -3, new long[]{4}, new long[]{1}, data, "negative storage offset");
        viewRefused("past-end.pth", 16, 10, new long[]{4, 2}, new long[]{2, 1}, data, "reaches element 17", "has only 16");
        viewRefused("stride-overflow.pth", 16, 0, new long[]{3, 3}, new long[]{Long.MAX_VALUE / 2, 1}, data, "beyond 2^63");
        viewRefused("huge-dim.pth", 16, 0, new long[]{1L << 40}, new long[]{1}, data, "invalid shape");
        viewRefused("rank-mismatch.pth", 16, 0, new long[]{4, 4}, new long[]{1}, data, "size has 2 dimensions but stride has 1");
        // a zero-size view may point anywhere, as in torch
        Path ok = archive("zero-size.pth", tensorPickle("w", "FloatStorage", 16, 99, new long[]{0, 5}, new long[]{5, 1}),
                Map.of("0", data));
        assertEquals(0, PthReader.read(ok).get("w").size());
    }

    // --- mutation fuzzing -----------------------------------------------------------------------------------------

    @Test
    void fuzzedPthFilesLoadOrFailCleanly() throws IOException {
        Map<String, HostTensor> tensors = PthTorchInteropTest.awkwardTensors(17);
        Path good = tmp.resolve("fuzz-base.pth");
        PthWriter.write(good, tensors, PthWriter.Dtype.BF16);
        byte[] base = Files.readAllBytes(good);
        byte[] basePickle = PthWriter.statePickle(new java.util.ArrayList<>(tensors.keySet()),
                tensors.values().stream().map(HostTensor::shape).toList(), PthWriter.Dtype.BF16);
        Random rnd = new Random(20240531);
        int[] loaded = new int[2];
        assertTimeoutPreemptively(Duration.ofSeconds(120), () -> {
            // 300 mutations of the file's bytes: exercises the zip directory, local headers and CRCs
            for (int i = 0; i < 300; i++) {
                byte[] b = mutate(base, rnd);
                Path f = Files.write(tmp.resolve("fuzz-" + i + ".pth"), b);
                if (loadOrFailCleanly(f, () -> {
                    ModelWeights w = PthReader.read(f);
                    for (ModelWeights.Entry e : w.entries().values()) e.load();
                })) loaded[0]++;
            }
            // 300 mutations of the pickle alone, re-archived with valid CRCs so that the unpickler sees them
            for (int i = 0; i < 300; i++) {
                byte[] p = mutate(basePickle, rnd);
                Path f = tmp.resolve("fuzz-pickle-" + i + ".pth");
                PthWriter.writeAtomically(f, zip -> {
                    zip.record("archive/data.pkl", p);
                    int k = 0;
                    for (HostTensor t : tensors.values()) zip.record("archive/data/" + k++, new byte[2 * t.size()]);
                    zip.record("archive/version", "3\n".getBytes(StandardCharsets.US_ASCII));
                }, false);
                if (loadOrFailCleanly(f, () -> {
                    ModelWeights w = PthReader.read(f);
                    for (ModelWeights.Entry e : w.entries().values()) e.load();
                })) loaded[1]++;
            }
        });
        // both outcomes must occur, or the mutations are not exercising what they should
        System.out.println("pth fuzz: " + loaded[0] + "/300 file mutations and " + loaded[1] + "/300 pickle mutations loaded");
        assertTrue(loaded[0] > 0 && loaded[0] < 300 && loaded[1] > 0 && loaded[1] < 300, Arrays.toString(loaded));
    }

    @Test
    void fuzzedSafetensorsFilesLoadOrFailCleanly() throws IOException {
        Path good = tmp.resolve("fuzz-base.safetensors");
        Map<String, HostTensor> tensors = new LinkedHashMap<>(PthTorchInteropTest.awkwardTensors(19));
        Safetensors.write(good, tensors, Map.of("ln_x_eps", "1e-5"));
        byte[] base = Files.readAllBytes(good);
        Random rnd = new Random(77);
        int[] loaded = new int[1];
        assertTimeoutPreemptively(Duration.ofSeconds(120), () -> {
            for (int i = 0; i < 300; i++) {
                byte[] b = mutate(base, rnd);
                Path f = Files.write(tmp.resolve("fuzz-" + i + ".safetensors"), b);
                if (loadOrFailCleanly(f, () -> Safetensors.readModel(f))) loaded[0]++;
                loadOrFailCleanly(f, () -> Safetensors.readTensors(f));
            }
        });
        System.out.println("safetensors fuzz: " + loaded[0] + "/300 mutations loaded");
        assertTrue(loaded[0] > 0 && loaded[0] < 300, Arrays.toString(loaded));
    }

    /** Random byte changes (mostly near the start, where the headers are), truncations, or both. */
    private static byte[] mutate(byte[] base, Random rnd) {
        byte[] b = base.clone();
        int kind = rnd.nextInt(4);
        if (kind != 3) {
            int flips = 1 + rnd.nextInt(4);
            for (int j = 0; j < flips; j++) {
                int at = rnd.nextBoolean() ? rnd.nextInt(Math.min(b.length, 400)) : rnd.nextInt(b.length);
                b[at] = rnd.nextInt(3) == 0 ? (byte) (b[at] ^ (1 << rnd.nextInt(8))) : (byte) rnd.nextInt(256);
            }
        }
        if (kind >= 2) b = Arrays.copyOf(b, rnd.nextInt(b.length + 1));
        return b;
    }

    /** Runs the load; true if it succeeded, false if it threw a ModelFormatException naming the file; fails otherwise. */
    private static boolean loadOrFailCleanly(Path f, Executable load) {
        try {
            load.execute();
            return true;
        } catch (ModelFormatException e) {
            assertTrue(e.getMessage().contains(f.getFileName().toString()), "message names the file: " + e.getMessage());
            return false;
        } catch (Throwable t) {
            return fail(f.getFileName() + ": expected success or a ModelFormatException, got " + t, t);
        }
    }

    // --- helpers --------------------------------------------------------------------------------------------------

    private static ModelFormatException refused(Executable e, Path file, String... words) {
        ModelFormatException ex = assertThrows(ModelFormatException.class, e);
        String msg = ex.getMessage();
        assertTrue(msg.contains(file.getFileName().toString()), "message names the file: " + msg);
        for (String w : words) assertTrue(msg.contains(w), "message contains '" + w + "': " + msg);
        return ex;
    }

    private void pickleRefused(String name, byte[] pickle, String... words) throws IOException {
        Path f = archive(name, pickle, Map.of());
        refused(() -> PthReader.read(f), f, words);
    }

    private void viewRefused(String name, long storageNumel, long offset, long[] size, long[] stride, byte[] data,
                             String... words) throws IOException {
        Path f = archive(name, tensorPickle("w", "FloatStorage", storageNumel, offset, size, stride), Map.of("0", data));
        refused(() -> PthReader.read(f), f, words);
    }

    /** An archive laid out as torch.save does, with the given pickle and storage records. */
    private Path archive(String name, byte[] pickle, Map<String, byte[]> storages) {
        Path f = tmp.resolve(name);
        PthWriter.writeAtomically(f, zip -> {
            zip.record("archive/data.pkl", pickle);
            for (Map.Entry<String, byte[]> s : storages.entrySet()) zip.record("archive/data/" + s.getKey(), s.getValue());
            zip.record("archive/version", "3\n".getBytes(StandardCharsets.US_ASCII));
        }, false);
        return f;
    }

    /** A state dict {key: _rebuild_tensor_v2(storage '0', offset, size, stride, False, OrderedDict())}. */
    static byte[] tensorPickle(String key, String storageClass, long numel, long offset, long[] size, long[] stride) {
        PickleWriter p = new PickleWriter().proto2();
        p.global("collections", "OrderedDict").emptyTuple().reduce();
        p.string(key).global("torch._utils", "_rebuild_tensor_v2").mark();
        p.mark().string("storage").global("torch", storageClass).string("0").string("cpu").integer(numel).tupleFromMark().binPersId();
        p.integer(offset).integerTuple(size).integerTuple(stride).bool(false);
        p.global("collections", "OrderedDict").emptyTuple().reduce().tupleFromMark().reduce();
        // SETITEM: the dict is below key and value
        return withSetItem(p.stop().toByteArray());
    }

    /** Turns "... value STOP" into "... value SETITEM STOP". */
    private static byte[] withSetItem(byte[] pickle) {
        byte[] out = Arrays.copyOf(pickle, pickle.length + 1);
        out[pickle.length - 1] = 's';
        out[pickle.length] = '.';
        return out;
    }

    private static void shortString(ByteArrayOutputStream out, String s) {
        byte[] b = s.getBytes(StandardCharsets.UTF_8);
        out.write(0x8c);
        out.write(b.length);
        out.write(b, 0, b.length);
    }

    /** Start of the last occurrence of the signature that is followed (46 bytes later) by the given name. */
    private static int lastIndexOf(byte[] b, byte[] signature, String name) {
        byte[] n = name.getBytes(StandardCharsets.UTF_8);
        for (int i = b.length - signature.length; i >= 0; i--) {
            if (Arrays.equals(b, i, i + signature.length, signature, 0, signature.length)
                    && i + 46 + n.length <= b.length && Arrays.equals(b, i + 46, i + 46 + n.length, n, 0, n.length)) {
                return i;
            }
        }
        throw new AssertionError("no central entry for " + name);
    }
}
