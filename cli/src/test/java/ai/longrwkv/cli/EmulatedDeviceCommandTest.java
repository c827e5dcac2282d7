package ai.longrwkv.cli;

import ai.longrwkv.core.io.Safetensors;
import ai.longrwkv.core.tensor.HostTensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Commands run through the CUDA kernels on the emulated device ({@code --device emulated}) exactly as on a GPU, and
 * the launcher users start passes the same kernel location as the GPU check.
 */
class EmulatedDeviceCommandTest {
    static final String TOKENS = "34,105,110,32,116,104,101,32,109,105,100,100,108,101";

    /** debug dump of the rwkv.cpp oracle model over 3 chunks: logits, loss, every gradient and dS0 as on the CPU. */
    @Test
    void debugDumpOnTheEmulatedDeviceMatchesTheCpu(@TempDir Path dir) {
        Map<String, HostTensor> cpu = dump(dir, "cpu"), emu = dump(dir, "emulated");
        assertEquals(cpu.keySet(), emu.keySet());
        for (String k : cpu.keySet()) {
            float[] a = cpu.get(k).data(), b = emu.get(k).data();
            double max = 0, diff = 0;
            for (int i = 0; i < a.length; i++) {
                max = Math.max(max, Math.abs(a[i]));
                diff = Math.max(diff, Math.abs((double) a[i] - b[i]));
                assertTrue(Float.isFinite(b[i]), k + "[" + i + "] is " + b[i]);
            }
            // the parity suite's fp32 bound (CudaParityTest); 12 layers deep, so relative to the tensor's largest value
            assertTrue(diff <= 1e-4 * Math.max(max, 1e-3), k + ": max |cpu - emulated| " + diff + " vs max " + max);
        }
    }

    private static Map<String, HostTensor> dump(Path dir, String device) {
        Path out = dir.resolve(device + ".safetensors");
        CliTestSupport.Run r = CliTestSupport.run("debug", "dump", "--model", CliTestSupport.oracle("tiny-rwkv-5v2-730K-FP32.bin").toString(),
                "--tokens", TOKENS, "--chunk-len", "5", "--device", device, "--out", out.toString());
        assertEquals(0, r.exitCode(), r.err());
        return Safetensors.readTensors(out);
    }

    /** scripts/longrwkv and scripts/gpu-check.sh take their JVM options, prebuilt kernels included, from one file. */
    @Test
    void launcherPassesThePrebuiltKernelsLikeTheGpuCheck(@TempDir Path dir) throws Exception {
        Path kernels = Files.createDirectories(dir.resolve("kernels"));
        Files.writeString(kernels.resolve("wkv5.fatbin"), "x");
        Path root = Path.of("..").toAbsolutePath().normalize();
        ProcessBuilder pb = new ProcessBuilder("bash", root.resolve("scripts/longrwkv").toString(), "forward", "--help");
        pb.environment().put("LONGRWKV_DRY_RUN", "1");
        pb.environment().put("LONGRWKV_KERNELS", kernels.toString());
        pb.redirectErrorStream(true);
        Process p = pb.start();
        String line = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(p.waitFor(60, TimeUnit.SECONDS));
        assertEquals(0, p.exitValue(), line);
        assertTrue(line.contains("-Dlongrwkv.cuda.kernels=" + kernels), line);
        assertTrue(line.contains("--add-modules jdk.incubator.vector"), line);
        assertTrue(line.contains("-XX:PerMethodTrapLimit=100000"), line);   // the CPU kernels' unboxed vectors (jvm-opts.sh)
        String check = Files.readString(root.resolve("scripts/gpu-check.sh"));
        assertTrue(check.contains(". \"$b/scripts/jvm-opts.sh\"") && check.contains("\"${JVM_OPTS[@]}\""),
                "gpu-check.sh must use the launcher's JVM options");
    }
}
