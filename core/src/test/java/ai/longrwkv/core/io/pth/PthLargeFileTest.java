package ai.longrwkv.core.io.pth;

import ai.longrwkv.core.model.ModelWeights;
import ai.longrwkv.core.tensor.HostTensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.condition.EnabledIfSystemProperty;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A real file over 4 GB (zip64 offsets) holding a storage over 2 GB (mapped in pieces). Needs about 5 GB of disk and
 * a 6 GB heap, so it runs only on request: {@code mvn -pl core test -Dtest=PthLargeFileTest -Dlongrwkv.largeTests=true}.
 * Where PyTorch is installed it also checks that torch.load reads the file.
 */
@EnabledIfSystemProperty(named = "longrwkv.largeTests", matches = "true")
class PthLargeFileTest {
    @TempDir
    Path tmp;

    /** Values that identify their position (exact in float32 and cheap to check). */
    private static float value(long tensor, long i) {
        return (float) ((i * 7 + tensor * 13) % 65_521);
    }

    /** A lazy entry producing the pattern, so the writer holds one tensor at a time. */
    private record Pattern(int id, int[] shape) implements ModelWeights.Entry {
        @Override public String dtype() { return "F32"; }

        @Override
        public HostTensor load() {
            HostTensor t = HostTensor.zeros(shape);
            float[] d = t.data();
            for (int i = 0; i < d.length; i++) d[i] = value(id, i);
            return t;
        }
    }

    @Test
    void over4GbFileWithOver2GbStorage() throws Exception {
        Map<String, ModelWeights.Entry> entries = new LinkedHashMap<>();
        entries.put("big", new Pattern(0, new int[]{163_840, 4096}));   // 2.68 GB of fp32: more than one map can hold
        entries.put("second", new Pattern(1, new int[]{131_072, 4096})); // pushes the end of the file past 4 GB
        Path f = tmp.resolve("large.pth");
        long t0 = System.nanoTime();
        PthWriter.write(f, entries, PthWriter.Dtype.FP32, null, false);
        long t1 = System.nanoTime();
        assertTrue(Files.size(f) > (1L << 32), "file is over 4 GB: " + Files.size(f));

        ModelWeights w = PthReader.read(f);
        long t2 = System.nanoTime();
        System.out.printf("wrote %.1f GB in %.1f s; read the directory in %.3f s%n", Files.size(f) / 1e9, (t1 - t0) / 1e9, (t2 - t1) / 1e9);
        int id = 0;
        for (String key : entries.keySet()) {
            HostTensor t = w.get(key);
            float[] d = t.data();
            for (int i = 0; i < d.length; i += 997) assertEquals(value(id, i), d[i], key + "[" + i + "]");
            assertEquals(value(id, d.length - 1), d[d.length - 1], key + " last value");
            id++;
        }
        System.out.printf("loaded and checked in %.1f s%n", (System.nanoTime() - t2) / 1e9);

        try {
            TorchPython.assumeAvailable();
        } catch (org.opentest4j.TestAbortedException e) {
            return; // the Java part above is the point of this test; torch is a bonus here
        }
        TorchPython.run(tmp, """
                import sys, torch
                sd = torch.load(sys.argv[1], weights_only=True)
                def value(tensor, i):
                    return float((i * 7 + tensor * 13) % 65521)
                for tid, k in enumerate(['big', 'second']):
                    flat = sd[k].view(-1)
                    for i in [0, 1, 12345, flat.numel() // 2, flat.numel() - 1]:
                        assert flat[i].item() == value(tid, i), (k, i, flat[i].item())
                print('torch ok')
                """, f.toString());
    }

    /** torch.save's own zip64 archive over 4 GB, with a view into the large storage, read by PthReader. */
    @Test
    void readsTorchsOwnLargeArchive() throws Exception {
        TorchPython.assumeAvailable();
        Path f = tmp.resolve("torch-large.pth");
        TorchPython.run(tmp, """
                import sys, torch
                def pattern(tid, n):
                    t = torch.empty(n, dtype=torch.float32)
                    step = 1 << 24
                    for s in range(0, n, step):
                        i = torch.arange(s, min(n, s + step), dtype=torch.int64)
                        t[s:s + step] = ((i * 7 + tid * 13) % 65521).float()
                    return t
                big = pattern(0, 163840 * 4096).view(163840, 4096)
                sd = {'big': big, 'second': pattern(1, 131072 * 4096).view(131072, 4096), 'tail_t': big[-3:, 5:].t()}
                torch.save(sd, sys.argv[1])
                """, f.toString());
        assertTrue(Files.size(f) > (1L << 32), "file is over 4 GB: " + Files.size(f));
        ModelWeights w = PthReader.read(f);
        float[] big = w.get("big").data();
        for (int i = 0; i < big.length; i += 1009) assertEquals(value(0, i), big[i], "big[" + i + "]");
        big = null;
        float[] second = w.get("second").data();
        for (int i = 0; i < second.length; i += 1009) assertEquals(value(1, i), second[i], "second[" + i + "]");
        second = null;
        HostTensor tail = w.get("tail_t"); // [4091, 3]: element (c, r) is big[163837 + r][5 + c]
        assertEquals(4091, tail.dim(0));
        for (int c = 0; c < 4091; c += 7) {
            for (int r = 0; r < 3; r++) {
                long i = (163_837L + r) * 4096 + 5 + c;
                assertEquals(value(0, i), tail.data()[c * 3 + r], "tail_t[" + c + "][" + r + "]");
            }
        }
    }
}
