package ai.longrwkv.core.backend.cuda;

import ai.longrwkv.core.backend.Backend;
import ai.longrwkv.core.backend.Backends;
import ai.longrwkv.core.backend.cpu.CpuBackend;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The guarded entry point: runs everywhere, checks what it can on a machine with or without a GPU. */
class BackendsTest {

    /** A machine with no NVIDIA driver library on the loader path (then CUDA must fall back with a driver reason). */
    static boolean noDriver() {
        for (String dir : List.of("/usr/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/lib", "/lib/x86_64-linux-gnu", "/usr/local/nvidia/lib64")) {
            if (Files.exists(Paths.get(dir, "libcuda.so.1"))) return false;
        }
        String ld = System.getenv("LD_LIBRARY_PATH");
        if (ld != null) for (String dir : ld.split(":")) if (!dir.isEmpty() && Files.exists(Paths.get(dir, "libcuda.so.1"))) return false;
        return true;
    }

    @Test
    void cpuIsCpu() {
        try (Backend b = Backends.create("cpu")) {
            assertInstanceOf(CpuBackend.class, b);
        }
        try (Backend b = Backends.create(null)) {
            assertInstanceOf(CpuBackend.class, b);
        }
    }

    @Test
    void unknownDeviceIsRefused() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Backends.create("tpu"));
        assertTrue(e.getMessage().contains("cpu, cuda, auto or emulated"), e.getMessage());
    }

    @Test
    void autoFallsBackToCpuWithAReasonAndCudaFailsWithIt() {
        try (Backend auto = Backends.create("auto")) {
            if (auto instanceof CpuBackend) {
                String reason = Backends.cudaUnavailableReason();
                assertNotNull(reason, "auto chose the CPU, so there must be a reason");
                assertTrue(Backends.describe(auto).contains(reason));
                if (noDriver()) assertTrue(reason.contains("libcuda") && reason.contains("driver"), reason);
                IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Backends.create("cuda"));
                assertTrue(e.getMessage().startsWith("--device cuda: the GPU cannot be used: "), e.getMessage());
                assertTrue(e.getMessage().contains(reason), e.getMessage());
                // and again: the same clear error, not a NoClassDefFoundError from a poisoned class
                IllegalArgumentException again = assertThrows(IllegalArgumentException.class, () -> Backends.create("CUDA"));
                assertEquals(e.getMessage(), again.getMessage());
            } else {
                assertEquals(CudaBackend.class, auto.getClass());
                assertTrue(Backends.cudaTriedAndWorked());
                assertTrue(auto.name().startsWith("cuda ("), auto.name());
            }
        }
    }

    /** In a fresh JVM: --device cpu must not load a single org.bytedeco.cuda class. */
    @Test
    void cpuNeverLoadsCudaClasses() throws IOException, InterruptedException {
        String java = ProcessHandle.current().info().command().orElse("java");
        Path out = Files.createTempFile("backends-probe", ".txt");
        try {
            Process p = new ProcessBuilder(java, "--add-modules", "jdk.incubator.vector", "-verbose:class",
                    "-cp", probeClassPath(), CpuProbe.class.getName())
                    .redirectErrorStream(true).redirectOutput(out.toFile()).start();
            assertTrue(p.waitFor(120, TimeUnit.SECONDS), "probe JVM timed out");
            String text = Files.readString(out, StandardCharsets.UTF_8);
            assertEquals(0, p.exitValue(), text.length() > 3000 ? text.substring(text.length() - 3000) : text);
            assertTrue(text.contains("probe: cpu ("), "probe ran");
            assertFalse(text.contains("org.bytedeco.cuda"), "a CUDA class was loaded for --device cpu");
            assertFalse(text.contains("ai.longrwkv.core.backend.cuda.CudaBackend"), "CudaBackend was loaded for --device cpu");
        } finally {
            Files.deleteIfExists(out);
        }
    }

    /**
     * The class path of this JVM plus the jars or directories the probe's classes come from: under the JUnit console
     * launcher (gpu-check.sh) java.class.path names only the launcher, the tested classes live in a child loader.
     */
    static String probeClassPath() {
        java.util.LinkedHashSet<String> parts = new java.util.LinkedHashSet<>(List.of(System.getProperty("java.class.path").split(java.io.File.pathSeparator)));
        for (String name : List.of(BackendsTest.class.getName(), Backends.class.getName(), "org.bytedeco.javacpp.Loader",
                "org.bytedeco.openblas.global.openblas")) {
            try {
                Class<?> c = Class.forName(name, false, BackendsTest.class.getClassLoader());
                parts.add(Paths.get(c.getProtectionDomain().getCodeSource().getLocation().toURI()).toString());
            } catch (ReflectiveOperationException | java.net.URISyntaxException | NullPointerException e) {
                // keep what we have; the probe's own error will say what is missing
            }
        }
        return String.join(java.io.File.pathSeparator, parts);
    }

    /** Main of the probe JVM. */
    public static final class CpuProbe {
        public static void main(String[] args) {
            try (Backend b = Backends.create("cpu")) {
                System.out.println("probe: " + b.name());
            }
        }
    }
}
