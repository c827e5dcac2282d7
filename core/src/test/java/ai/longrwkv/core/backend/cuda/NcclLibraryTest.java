package ai.longrwkv.core.backend.cuda;

import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.*;

/**
 * A machine without libnccl.so.2 gets one line saying how to install it, never a class name or a stack trace. What
 * JavaCPP throws was observed on this machine (no GPU, no NCCL) with a stand-in libcuda.so.1, so that loading gets
 * past the CUDA runtime to the NCCL library, as it does on a GPU machine: UnsatisfiedLinkError "no jninccl in
 * java.library.path" caused by ".../libjninccl.so: libnccl.so.2: cannot open shared object file", then
 * NoClassDefFoundError "Could not initialize class org.bytedeco.cuda.global.nccl" on every later touch.
 */
class NcclLibraryTest {

    @Test
    void theObservedLoaderFailuresBecomeTheOneLine() {
        UnsatisfiedLinkError first = new UnsatisfiedLinkError("no jninccl in java.library.path: /usr/lib");
        first.initCause(new UnsatisfiedLinkError("/root/.javacpp/cache/cuda-13.1-9.19-1.5.13-linux-x86_64.jar/org/bytedeco/cuda/linux-x86_64/"
                + "libjninccl.so: libnccl.so.2: cannot open shared object file: No such file or directory"));
        assertEquals(DriverNccl.MISSING_LIBRARY, DriverNccl.explainLoadFailure(first));
        assertEquals("libnccl.so.2 not found: install NCCL (a CUDA install, the distribution's libnccl2 package, or pip install nvidia-nccl-cu13) "
                + "and make it visible on LD_LIBRARY_PATH", DriverNccl.MISSING_LIBRARY);
        UnsatisfiedLinkError noDriver = new UnsatisfiedLinkError("no jnicudart in java.library.path");
        noDriver.initCause(new UnsatisfiedLinkError(".../libjnicudart.so: libcuda.so.1: cannot open shared object file"));
        assertEquals("NCCL needs the NVIDIA driver (libcuda.so.1 not found)", DriverNccl.explainLoadFailure(noDriver));
    }

    /** The child: tries to load NCCL twice and prints what a user would see each time. */
    public static void main(String[] args) {
        for (int i = 0; i < 2; i++) {
            try {
                DriverNccl.load();
                System.out.println("LOADED");
            } catch (IllegalArgumentException e) {
                System.out.println("MESSAGE " + e.getMessage());
            }
        }
    }

    @Test
    void aRealLoadWithoutLibncclGivesTheOneLineEveryTime() throws Exception {
        Path dir = Files.createTempDirectory("stub-libcuda");
        try {
            Path c = dir.resolve("stub.c");
            Files.writeString(c, "void longrwkv_stub_libcuda(void) {}\n");
            Path lib = dir.resolve("libcuda.so.1");
            Process cc;
            try {
                cc = new ProcessBuilder(EmulatedDevice.compiler(), "-x", "c", "-shared", "-fPIC", "-o", lib.toString(), c.toString())
                        .redirectErrorStream(true).start();
            } catch (java.io.IOException e) {
                Assumptions.abort("no C compiler for the stand-in libcuda.so.1: " + e.getMessage());
                return;
            }
            cc.getInputStream().readAllBytes();
            Assumptions.assumeTrue(cc.waitFor() == 0, "could not build the stand-in libcuda.so.1");
            ProcessBuilder pb = new ProcessBuilder(Path.of(System.getProperty("java.home"), "bin", "java").toString(), "-Xmx256m",
                    "-cp", System.getProperty("java.class.path"), NcclLibraryTest.class.getName()).redirectErrorStream(true);
            String ld = System.getenv("LD_LIBRARY_PATH");
            pb.environment().put("LD_LIBRARY_PATH", dir + (ld == null || ld.isEmpty() ? "" : ":" + ld));
            Process p = pb.start();
            String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            assertTrue(p.waitFor(60, TimeUnit.SECONDS));
            Assumptions.assumeFalse(out.contains("LOADED"), "this machine has libnccl.so.2: nothing to check");
            Assumptions.assumeFalse(out.contains("libcudart") || out.contains("could not be loaded"),
                    "the CUDA runtime (libcudart.so.13) is missing here, so loading stops before NCCL: " + out.trim());
            List<String> lines = out.lines().filter(l -> l.startsWith("MESSAGE ")).toList();
            assertEquals(List.of("MESSAGE " + DriverNccl.MISSING_LIBRARY, "MESSAGE " + DriverNccl.MISSING_LIBRARY), lines, out);
        } finally {
            try (var files = Files.list(dir)) {
                for (Path f : files.toList()) Files.deleteIfExists(f);
            }
            Files.deleteIfExists(dir);
        }
    }
}
