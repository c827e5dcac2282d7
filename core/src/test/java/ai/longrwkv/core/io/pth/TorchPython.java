package ai.longrwkv.core.io.pth;

import org.junit.jupiter.api.Assumptions;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * Runs Python scripts with real PyTorch for the interop tests. The interpreter is /usr/bin/python3 unless the
 * environment variable LONGRWKV_TEST_PYTHON names another; where it or torch is missing the calling test is skipped
 * with the reason (an Assumption), never passed silently.
 */
final class TorchPython {
    private static final String PYTHON = System.getenv().getOrDefault("LONGRWKV_TEST_PYTHON", "/usr/bin/python3");
    private static final long TIMEOUT_SECONDS = 300;
    private static volatile String unavailableReason; // null = not checked yet, "" = available

    private TorchPython() {}

    /** Skips the calling test (with the reason) unless Python with torch can be run. */
    static void assumeAvailable() {
        if (unavailableReason == null) unavailableReason = check();
        Assumptions.assumeTrue(unavailableReason.isEmpty(), unavailableReason);
    }

    private static String check() {
        if (!Files.isExecutable(Path.of(PYTHON))) return "PyTorch interop skipped: " + PYTHON + " not found";
        try {
            Result r = exec(List.of(PYTHON, "-c", "import torch; print(torch.__version__)"), 120);
            if (r.exitCode != 0) return "PyTorch interop skipped: '" + PYTHON + " -c \"import torch\"' failed: " + r.output.strip();
            return "";
        } catch (IOException | InterruptedException e) {
            return "PyTorch interop skipped: cannot run " + PYTHON + ": " + e;
        }
    }

    record Result(int exitCode, String output) {}

    /** Runs the script with the arguments; fails the test (with Python's output) if it exits non-zero. */
    static String run(Path dir, String script, String... args) throws IOException, InterruptedException {
        Path file = dir.resolve("script-" + System.nanoTime() + ".py");
        Files.writeString(file, script);
        List<String> cmd = new ArrayList<>(List.of(PYTHON, file.toString()));
        cmd.addAll(List.of(args));
        Result r = exec(cmd, TIMEOUT_SECONDS);
        if (r.exitCode != 0) throw new AssertionError("python exited with " + r.exitCode + ":\n" + r.output);
        return r.output;
    }

    private static Result exec(List<String> cmd, long timeoutSeconds) throws IOException, InterruptedException {
        ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(true);
        pb.environment().put("PYTHONDONTWRITEBYTECODE", "1");
        Path log = Files.createTempFile("torch-python", ".log");
        pb.redirectOutput(log.toFile());
        Process p = pb.start();
        try {
            if (!p.waitFor(timeoutSeconds, TimeUnit.SECONDS)) {
                p.destroyForcibly();
                throw new AssertionError("python did not finish within " + timeoutSeconds + " s: " + cmd);
            }
            return new Result(p.exitValue(), Files.readString(log, StandardCharsets.UTF_8));
        } finally {
            Files.deleteIfExists(log);
        }
    }
}
