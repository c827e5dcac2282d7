package ai.longrwkv.cli;

import com.google.gson.JsonParser;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Issue 6, test 5: scripts/demo.sh end to end with tiny sizes (the same script, steps and commands as the real demo,
 * run against this build's class path), and its outputs exist and parse.
 */
class EvalDemoPipelineTest {
    private static Path demoScript() {
        for (Path dir = Paths.get("").toAbsolutePath(); dir != null; dir = dir.getParent()) {
            Path candidate = dir.resolve("scripts").resolve("demo.sh");
            if (Files.isRegularFile(candidate)) return candidate;
        }
        Assumptions.assumeTrue(false, "scripts/demo.sh not found above " + Paths.get("").toAbsolutePath());
        return null;
    }

    /** A longrwkv command that runs this JVM's class path (the fat jar may not be built yet when tests run). */
    private static Path launcher(Path dir) throws IOException {
        String java = Paths.get(System.getProperty("java.home"), "bin", "java").toString();
        Path script = dir.resolve("longrwkv");
        Files.writeString(script, "#!/bin/sh\nexec '" + java + "' --add-modules jdk.incubator.vector -Xss8m "
                + "-Dorg.bytedeco.javacpp.maxBytes=0 -Dorg.bytedeco.javacpp.maxPhysicalBytes=0 -cp '"
                + System.getProperty("java.class.path") + "' ai.longrwkv.cli.LongRwkv \"$@\"\n");
        assertTrue(script.toFile().setExecutable(true));
        return script;
    }

    @Test
    void theDemoRunsEndToEndAndItsOutputsParse(@TempDir Path dir) throws Exception {
        Path demo = demoScript();
        Assumptions.assumeTrue(Files.isExecutable(Paths.get("/bin/bash")) || Files.isExecutable(Paths.get("/usr/bin/bash")), "needs bash");
        Path out = dir.resolve("demo-out");
        ProcessBuilder pb = new ProcessBuilder("bash", demo.toString(), out.toString());
        pb.redirectErrorStream(true);
        Map<String, String> env = pb.environment();
        env.put("LONGRWKV", launcher(dir).toString());
        env.put("LONGRWKV_NO_PROGRESS", "1");
        env.put("DEMO_EMBD", "32");
        env.put("DEMO_HEAD_SIZE", "16");
        env.put("DEMO_TRAIN_LENGTHS", "256,288");
        env.put("DEMO_TRAIN_SAMPLES", "6");
        env.put("DEMO_STEPS", "2");
        env.put("DEMO_EVAL_LENGTHS", "288,320");
        env.put("DEMO_EVAL_DEPTHS", "0,100");
        env.put("DEMO_TRIALS", "1");
        Path log = dir.resolve("demo.log");
        pb.redirectOutput(log.toFile());
        Process p = pb.start();
        assertTrue(p.waitFor(180, TimeUnit.SECONDS), "demo finished in time");
        String printed = Files.readString(log, StandardCharsets.UTF_8);
        assertEquals(0, p.exitValue(), printed);

        for (String run : new String[]{"full", "truncated"}) {
            assertTrue(Files.size(out.resolve(run).resolve("rwkv-final.pth")) > 0, run);
            assertEquals(2, Files.readAllLines(out.resolve(run).resolve("metrics.jsonl")).size(), run + ": two steps");
        }
        for (String model : new String[]{"untrained", "truncated", "full"}) {
            Path eval = out.resolve("eval-" + model);
            List<String> trials = Files.readAllLines(eval.resolve("trials.jsonl"));
            assertEquals(2 * 2, trials.size(), model);
            for (String t : trials) assertTrue(JsonParser.parseString(t).getAsJsonObject().has("score"), t);
            List<String> summary = Files.readAllLines(eval.resolve("summary.csv"));
            assertEquals(1 + 4, summary.size());
            for (String row : summary.subList(1, summary.size())) {
                double accuracy = Double.parseDouble(row.split(",")[3]);
                assertTrue(accuracy >= 0 && accuracy <= 1, row);
            }
            assertTrue(Files.size(eval.resolve("heatmap.png")) > 1000, model);
        }
        // the comparison table: one accuracy and one answer-loss line per model, a number per eval length
        List<String> table = Files.readAllLines(out.resolve("comparison.txt"));
        for (String model : new String[]{"untrained", "truncated", "full"}) {
            String acc = table.stream().filter(l -> l.startsWith(model + " accuracy")).findFirst().orElseThrow();
            String[] numbers = acc.substring((model + " accuracy").length()).trim().split("\\s+");
            assertEquals(2, numbers.length, acc);
            for (String n : numbers) Double.parseDouble(n);
            assertTrue(table.stream().anyMatch(l -> l.startsWith(model + " answer loss")), String.join("\n", table));
        }
        assertTrue(printed.contains("Outputs in " + out.toRealPath()), printed);
    }
}
