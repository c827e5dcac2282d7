package ai.longrwkv.core.io.pth;

import ai.longrwkv.core.io.Float16;
import ai.longrwkv.core.model.ModelWeights;
import ai.longrwkv.core.tensor.HostTensor;
import com.google.gson.JsonArray;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * Interop with real PyTorch: files torch.save writes are read with identical values, and files PthWriter writes are
 * read by torch.load (also with weights_only=True) with exactly the values expected after rounding.
 * Python writes what it saved or loaded as manifest lines (key, dtype, shape) plus raw float32 values.
 */
class PthTorchInteropTest {
    @TempDir
    Path tmp;

    /** Saves tensors of every kind the reader must handle and dumps their values as torch sees them. */
    private static final String SAVE_SCRIPT = """
            import collections, json, sys, torch
            out = sys.argv[1]
            torch.manual_seed(1234)

            def dump(sd, name):
                with open(f'{out}/{name}.jsonl', 'w') as f, open(f'{out}/{name}.bin', 'wb') as b:
                    for k, v in sd.items():
                        f.write(json.dumps({'key': k, 'dtype': str(v.dtype), 'shape': list(v.shape),
                                            'contiguous': v.is_contiguous()}) + '\\n')
                        b.write(v.detach().float().contiguous().numpy().tobytes())

            big = torch.randn(100)
            sd = collections.OrderedDict()
            sd['bf16'] = torch.randn(3, 5).to(torch.bfloat16)
            sd['fp16'] = torch.tensor([0.0, -0.0, 1.0, 65504.0, 6e-8, float('inf'), -float('inf'), 1 / 3,
                                       float('nan'), -2.5e-5], dtype=torch.float16)
            sd['fp32'] = torch.randn(2, 3, 4)
            sd['offset_view'] = big[10:30].view(4, 5)
            sd['transposed'] = torch.randn(3, 4).t()
            sd['sliced'] = torch.randn(5, 6)[1:4, ::2]
            sd['bf16_transposed'] = torch.randn(4, 6).to(torch.bfloat16).t()
            sd['fp16_permuted'] = torch.randn(2, 3, 4).half().permute(2, 0, 1)
            sd['scalar'] = torch.tensor(2.5)
            sd['empty'] = torch.zeros(0, 3)
            sd['expanded'] = torch.randn(3, 1).expand(3, 4)
            sd['shares_storage'] = big
            sd['_forward_module.prefixed'] = torch.tensor([1.0, 2.0])
            sd['param'] = torch.nn.Parameter(torch.randn(2, 2))
            torch.save(sd, f'{out}/mixed.pth')
            dump(sd, 'mixed')

            plain = {'a': torch.randn(7), 'b': torch.randn(2, 2).to(torch.bfloat16)}
            torch.save(plain, f'{out}/plain_p4.pth', pickle_protocol=4)
            dump(plain, 'plain_p4')

            lin = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.LayerNorm(2))
            module_sd = lin.state_dict()   # an OrderedDict with a _metadata attribute (pickled with BUILD)
            torch.save(module_sd, f'{out}/module.pth')
            dump(module_sd, 'module')
            print(torch.__version__)
            """;

    @Test
    void readsWhatTorchSaves() throws Exception {
        TorchPython.assumeAvailable();
        TorchPython.run(tmp, SAVE_SCRIPT, tmp.toString());
        for (String name : List.of("mixed", "plain_p4", "module")) {
            List<Expected> expected = expected(name);
            for (long piece : new long[]{PthReader.DEFAULT_PIECE_BYTES, 8, 12}) {
                ModelWeights w = PthReader.read(tmp.resolve(name + ".pth"), piece);
                List<String> keys = new ArrayList<>(w.keys());
                assertEquals(expected.size(), keys.size(), name + ": number of tensors");
                for (int i = 0; i < expected.size(); i++) {
                    Expected e = expected.get(i);
                    String key = e.key.replace(PthReader.FORWARD_MODULE_PREFIX, "");
                    assertEquals(key, keys.get(i), name + ": key order");
                    ModelWeights.Entry entry = w.entries().get(key);
                    assertEquals(e.safetensorsDtype(), entry.dtype(), name + "/" + key);
                    assertArrayEquals(e.shape, entry.shape(), name + "/" + key);
                    assertEquals(e.contiguous, ((PthReader.Entry) entry).contiguous(), name + "/" + key + " contiguity");
                    HostTensor t = entry.load();
                    assertSameValues(e.values, t.data(), name + "/" + key + " (piece size " + piece + ")");
                }
            }
        }
        // the views really are views: make sure the test covers what it claims to
        List<Expected> mixed = expected("mixed");
        assertFalse(mixed.stream().filter(e -> e.key.equals("transposed")).findFirst().orElseThrow().contiguous);
        assertTrue(PthReader.readTensors(tmp.resolve("mixed.pth")).containsKey("prefixed"), "_forward_module. is stripped");
    }

    /** Loads every file with torch.load twice (plain and weights_only=True), checks both agree, dumps the values. */
    private static final String LOAD_SCRIPT = """
            import json, sys, torch, zipfile
            for path in sys.argv[1:]:
                a = torch.load(path)
                b = torch.load(path, weights_only=True)
                assert type(a).__name__ == 'OrderedDict', type(a)
                assert list(a.keys()) == list(b.keys())
                names = zipfile.ZipFile(path).namelist()
                n = len(a)
                assert names == ['archive/data.pkl', 'archive/byteorder'] + [f'archive/data/{i}' for i in range(n)] \\
                    + ['archive/version'], names
                with open(path + '.jsonl', 'w') as f, open(path + '.bin', 'wb') as out:
                    for k in a:
                        x, y = a[k], b[k]
                        assert x.dtype == y.dtype and x.shape == y.shape and torch.equal(x.float().nan_to_num(7.0), y.float().nan_to_num(7.0)), k
                        f.write(json.dumps({'key': k, 'dtype': str(x.dtype), 'shape': list(x.shape),
                                            'contiguous': x.is_contiguous()}) + '\\n')
                        out.write(x.float().contiguous().numpy().tobytes())
            print('ok')
            """;

    @Test
    void torchLoadsWhatWeWrite() throws Exception {
        TorchPython.assumeAvailable();
        Map<String, HostTensor> tensors = awkwardTensors(7);
        List<Path> files = new ArrayList<>();
        for (PthWriter.Dtype dtype : PthWriter.Dtype.values()) {
            Path f = tmp.resolve("ours-" + dtype + ".pth");
            PthWriter.write(f, tensors, dtype);
            files.add(f);
        }
        Path zip64 = tmp.resolve("ours-zip64.pth");
        PthWriter.write(zip64, entries(tensors), PthWriter.Dtype.FP32, null, true);
        files.add(zip64);
        Path empty = tmp.resolve("ours-empty.pth");
        PthWriter.write(empty, Map.of(), PthWriter.Dtype.BF16);
        files.add(empty);

        List<String> args = new ArrayList<>();
        files.forEach(f -> args.add(f.toString()));
        TorchPython.run(tmp, LOAD_SCRIPT, args.toArray(new String[0]));

        for (Path f : files) {
            PthWriter.Dtype dtype = f == zip64 ? PthWriter.Dtype.FP32
                    : f == empty ? PthWriter.Dtype.BF16 : PthWriter.Dtype.parse(f.getFileName().toString().replaceAll("ours-|\\.pth", ""));
            Map<String, HostTensor> written = f == empty ? Map.of() : tensors;
            List<Expected> loaded = read(tmp.resolve(f.getFileName() + ".jsonl"), tmp.resolve(f.getFileName() + ".bin"));
            assertEquals(written.size(), loaded.size(), f + ": tensor count");
            int i = 0;
            for (Map.Entry<String, HostTensor> e : written.entrySet()) {
                Expected got = loaded.get(i++);
                String what = f.getFileName() + "/" + e.getKey();
                assertEquals(e.getKey(), got.key, what);
                assertEquals(torchName(dtype), got.dtype, what);
                assertArrayEquals(e.getValue().shape(), got.shape, what);
                assertTrue(got.contiguous, what);
                assertSameValues(rounded(e.getValue().data(), dtype), got.values, what);
            }
            // and our own reader agrees, with every data record on a 64-byte boundary
            assertEquals(written.keySet(), PthReader.read(f).keys());
            checkAlignment(f);
        }
    }

    @Test
    void writingIsDeterministic() throws IOException {
        Map<String, HostTensor> tensors = awkwardTensors(3);
        for (PthWriter.Dtype dtype : PthWriter.Dtype.values()) {
            Path a = tmp.resolve("a-" + dtype + ".pth");
            Path b = tmp.resolve("other-name-" + dtype + ".pth");
            PthWriter.write(a, tensors, dtype);
            PthWriter.write(b, tensors, dtype);
            assertArrayEquals(Files.readAllBytes(a), Files.readAllBytes(b), dtype + ": same tensors, same bytes");
            try (var s = Files.list(tmp)) {
                assertTrue(s.noneMatch(p -> p.getFileName().toString().contains(".tmp-")), "no temporary files left");
            }
        }
    }

    @Test
    void readsBackWhatItWrites() throws IOException {
        Map<String, HostTensor> tensors = awkwardTensors(11);
        for (PthWriter.Dtype dtype : PthWriter.Dtype.values()) {
            for (boolean zip64 : new boolean[]{false, true}) {
                Path f = tmp.resolve("rt-" + dtype + "-" + zip64 + ".pth");
                PthWriter.write(f, entries(tensors), dtype, null, zip64);
                for (long piece : new long[]{PthReader.DEFAULT_PIECE_BYTES, 4, 16}) {
                    ModelWeights w = PthReader.read(f, piece);
                    assertEquals(new ArrayList<>(tensors.keySet()), new ArrayList<>(w.keys()));
                    for (Map.Entry<String, HostTensor> e : tensors.entrySet()) {
                        ModelWeights.Entry entry = w.entries().get(e.getKey());
                        assertEquals(dtype.storage.safetensorsName, entry.dtype());
                        assertArrayEquals(e.getValue().shape(), entry.shape());
                        assertSameValues(rounded(e.getValue().data(), dtype), entry.load().data(), f + "/" + e.getKey());
                    }
                }
            }
        }
    }

    // ---------------------------------------------------------------------------------------------------------------

    /** Shapes and values that tend to break writers: 0-d, empty, 1-D, [1,1,C], 5-D; NaN, infinities, -0, subnormals, ties. */
    static Map<String, HostTensor> awkwardTensors(long seed) {
        Random rnd = new Random(seed);
        Map<String, HostTensor> m = new LinkedHashMap<>();
        m.put("scalar", new HostTensor(new int[0], new float[]{3.25f}));
        m.put("empty", HostTensor.zeros(0, 3));
        m.put("special", new HostTensor(new int[]{12}, new float[]{Float.NaN, Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY,
                -0.0f, 0.0f, Float.MIN_VALUE, 1e-40f, 70000f, -1e30f, 1.00390625f /* bf16 tie */, 1.0009765625f /* near ties */, 6e-8f}));
        m.put("blocks.0.att.time_mix_k", random(rnd, 1, 1, 16));
        m.put("five_d", random(rnd, 2, 1, 3, 2, 2));
        m.put("blocks.0.att.key.weight", random(rnd, 16, 16));
        m.put("unicode.ключ", random(rnd, 3));
        return m;
    }

    static HostTensor random(Random rnd, int... shape) {
        HostTensor t = HostTensor.zeros(shape);
        for (int i = 0; i < t.size(); i++) t.data()[i] = (float) rnd.nextGaussian();
        return t;
    }

    static Map<String, ModelWeights.Entry> entries(Map<String, HostTensor> tensors) {
        Map<String, ModelWeights.Entry> out = new LinkedHashMap<>();
        tensors.forEach((k, t) -> out.put(k, new ModelWeights.InMemory(t)));
        return out;
    }

    /** What a value becomes when stored as the dtype and read back as float32. */
    static float[] rounded(float[] values, PthWriter.Dtype dtype) {
        float[] out = new float[values.length];
        for (int i = 0; i < values.length; i++) {
            out[i] = switch (dtype) {
                case FP32 -> values[i];
                case BF16 -> Float16.bf16ToFloat(Float16.floatToBf16(values[i]));
                case FP16 -> Float16.halfToFloat(Float16.floatToHalf(values[i]));
            };
        }
        return out;
    }

    /** Bit-identical values, except that any NaN matches any NaN (conversions may quiet a NaN's payload). */
    static void assertSameValues(float[] expected, float[] actual, String what) {
        assertEquals(expected.length, actual.length, what + ": value count");
        for (int i = 0; i < expected.length; i++) {
            if (Float.isNaN(expected[i]) && Float.isNaN(actual[i])) continue;
            if (Float.floatToRawIntBits(expected[i]) != Float.floatToRawIntBits(actual[i])) {
                fail(what + ": value " + i + " is " + actual[i] + ", expected " + expected[i]);
            }
        }
    }

    private static String torchName(PthWriter.Dtype d) {
        return switch (d) {
            case BF16 -> "torch.bfloat16";
            case FP16 -> "torch.float16";
            case FP32 -> "torch.float32";
        };
    }

    private void checkAlignment(Path f) throws IOException {
        try (FileChannel ch = FileChannel.open(f, StandardOpenOption.READ)) {
            ZipDirectory zip = ZipDirectory.read(ch, f.toString());
            for (ZipDirectory.Record r : zip.records().values()) {
                assertEquals(0, zip.dataOffset(r) % ZipWriter.ALIGNMENT, f + ": " + r.name() + " data is 64-byte aligned");
            }
        }
    }

    record Expected(String key, String dtype, int[] shape, boolean contiguous, float[] values) {
        String safetensorsDtype() {
            return switch (dtype) {
                case "torch.bfloat16" -> "BF16";
                case "torch.float16" -> "F16";
                case "torch.float32" -> "F32";
                default -> throw new AssertionError("unexpected dtype " + dtype);
            };
        }
    }

    private List<Expected> expected(String name) throws IOException {
        return read(tmp.resolve(name + ".jsonl"), tmp.resolve(name + ".bin"));
    }

    static List<Expected> read(Path manifest, Path values) throws IOException {
        ByteBuffer b = ByteBuffer.wrap(Files.readAllBytes(values)).order(ByteOrder.LITTLE_ENDIAN);
        List<Expected> out = new ArrayList<>();
        for (String line : Files.readAllLines(manifest)) {
            if (line.isBlank()) continue;
            JsonObject o = JsonParser.parseString(line).getAsJsonObject();
            JsonArray s = o.getAsJsonArray("shape");
            int[] shape = new int[s.size()];
            for (int i = 0; i < shape.length; i++) shape[i] = s.get(i).getAsInt();
            float[] v = new float[(int) HostTensor.numel(shape)];
            b.asFloatBuffer().get(v);
            b.position(b.position() + 4 * v.length);
            out.add(new Expected(o.get("key").getAsString(), o.get("dtype").getAsString(), shape,
                    o.get("contiguous").getAsBoolean(), v));
        }
        assertFalse(b.hasRemaining(), manifest + ": values left over");
        return out;
    }

}
