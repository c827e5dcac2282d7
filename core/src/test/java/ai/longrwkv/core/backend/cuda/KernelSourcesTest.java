package ai.longrwkv.core.backend.cuda;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The launch configuration and the prebuilt-kernel hashes are the same numbers on the host and in the kernels. */
class KernelSourcesTest {
    @Test
    void launchConfigIsReadFromTheHeaderTheKernelsUse() {
        String header = new String(KernelSources.read("launch_config.cuh"));
        assertTrue(header.contains("#define LONGRWKV_CE_THREADS " + KernelSources.CE_THREADS));
        assertTrue(header.contains("#define LONGRWKV_NORM_MAX_THREADS " + KernelSources.NORM_MAX_THREADS));
        for (String module : new String[]{"loss", "norm", "elementwise"}) {
            assertTrue(new String(KernelSources.source(module)).contains("#include \"launch_config.cuh\""), module);
        }
        assertTrue(KernelSources.NVRTC_FLAGS.contains("--fmad=false"), KernelSources.NVRTC_FLAGS.toString());
    }

    /** scripts/compile-kernels.sh records the hash the backend compares before it loads a prebuilt fatbin. */
    @Test
    void compileKernelsScriptRecordsTheHashTheBackendChecks(@TempDir Path dir) throws Exception {
        Path script = Path.of("..", "scripts", "compile-kernels.sh");
        assertTrue(Files.isRegularFile(script), "run from the core module: " + script.toAbsolutePath());
        Process p = new ProcessBuilder("bash", script.toString(), "--hashes", dir.toString()).redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes());
        assertTrue(p.waitFor(60, TimeUnit.SECONDS));
        assertEquals(0, p.exitValue(), out);
        for (String module : KernelSources.MODULES) {
            assertEquals(KernelSources.hash(module), Files.readString(dir.resolve(module + ".sha256")).trim(), module);
        }
    }
}
