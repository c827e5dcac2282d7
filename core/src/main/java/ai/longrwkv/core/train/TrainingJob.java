package ai.longrwkv.core.train;

import ai.longrwkv.core.util.Charts;
import ai.longrwkv.core.util.Progress;
import com.google.gson.JsonObject;
import me.tongfei.progressbar.ProgressBar;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.io.Writer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.LocalDateTime;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * Runs a {@link Trainer} to the end and makes it observable: a progress bar (loss, tokens/s, ETA) on stderr,
 * {@code metrics.jsonl} (one JSON object per step), {@code train_log.txt} in RWKV-LM's line format, checkpoints every
 * N steps and at the end, and {@code loss.png}. Resumed runs append to the same logs.
 */
public final class TrainingJob {
    private final Trainer trainer;
    private final Path outDir;
    private final long saveEvery;
    private final String runFingerprint;
    /** Data parallel: only rank 0 logs, shows progress and cleans up; the others train and checkpoint with it. */
    private final boolean primary;

    public TrainingJob(Trainer trainer, Path outDir, long saveEvery, String runFingerprint) {
        this(trainer, outDir, saveEvery, runFingerprint, true);
    }

    /** @param primary false for the ranks of a data-parallel group other than 0 */
    public TrainingJob(Trainer trainer, Path outDir, long saveEvery, String runFingerprint, boolean primary) {
        this.trainer = trainer;
        this.outDir = outDir;
        this.saveEvery = saveEvery;
        this.runFingerprint = runFingerprint;
        this.primary = primary;
    }

    /** A rank other than 0: the same steps and checkpoints (their collectives), nothing written but its checkpoint shards. */
    private List<Trainer.StepResult> runQuietly() {
        List<Trainer.StepResult> results = new ArrayList<>();
        while (!trainer.done()) {
            Trainer.StepResult r = trainer.trainStep();
            results.add(r);
            if (saveEvery > 0 && r.step() % saveEvery == 0 && !trainer.done()) trainer.saveCheckpoint(checkpointDir(), runFingerprint);
        }
        trainer.saveCheckpoint(checkpointDir(), runFingerprint);
        return results;
    }

    public Path checkpointDir() { return outDir.resolve("checkpoints"); }

    /** Trains until the configured number of steps; returns the step results of this process. */
    public List<Trainer.StepResult> run(long totalSteps) {
        if (!primary) return runQuietly();
        List<Trainer.StepResult> results = new ArrayList<>();
        long startNanos = System.nanoTime();
        long tokensThisRun = 0;
        try {
            Files.createDirectories(outDir);
            // what a kill left: temporary checkpoint directories and temporary files of processes that are gone
            Checkpoints.removeStaleTemporaries(checkpointDir());
            Checkpoints.removeStaleTemporaries(outDir, false);
            for (String log : new String[]{"metrics.jsonl", "train_log.txt"}) {
                Path f = outDir.resolve(log);
                if (Files.exists(f, java.nio.file.LinkOption.NOFOLLOW_LINKS) && (Files.isSymbolicLink(f) || !Files.isRegularFile(f))) {
                    throw new IllegalArgumentException(f + " is " + (Files.isSymbolicLink(f) ? "a symbolic link" : "not a regular file")
                            + ": expected the run's own log file (remove it)");
                }
            }
            // a run killed after its last checkpoint logged steps that the resumed run does again: drop them
            dropLinesAfter(outDir.resolve("metrics.jsonl"), trainer.step(), true);
            dropLinesAfter(outDir.resolve("train_log.txt"), trainer.step(), false);
            try (Writer metrics = Files.newBufferedWriter(outDir.resolve("metrics.jsonl"), StandardCharsets.UTF_8,
                    StandardOpenOption.CREATE, StandardOpenOption.APPEND);
                 Writer log = Files.newBufferedWriter(outDir.resolve("train_log.txt"), StandardCharsets.UTF_8,
                         StandardOpenOption.CREATE, StandardOpenOption.APPEND);
                 ProgressBar bar = Progress.bar("train", totalSteps, "step")) {
                bar.stepTo(trainer.step());
                while (!trainer.done()) {
                    Trainer.StepResult r = trainer.trainStep();
                    results.add(r);
                    tokensThisRun += r.tokens();
                    double elapsed = (System.nanoTime() - startNanos) / 1e9;
                    double tps = tokensThisRun / Math.max(elapsed, 1e-9);
                    JsonObject m = new JsonObject();
                    m.addProperty("step", r.step());
                    m.addProperty("loss", r.loss());
                    m.addProperty("lr", r.lr());
                    m.addProperty("grad_norm", r.gradNorm());
                    m.addProperty("tokens", trainer.tokensSeen());
                    m.addProperty("tokens_per_sec", tps);
                    m.addProperty("elapsed", elapsed);
                    if (r.skipped()) m.addProperty("skipped_nonfinite", true);
                    if (r.stateOnly()) m.addProperty("state_only", true);   // --carry-state: no trained token, no update
                    metrics.write(m + "\n");
                    metrics.flush();
                    // RWKV-LM's train_log.txt: epoch avg_loss ppl lr datetime epoch (here per step)
                    log.write(String.format("%d %.6f %.4f %.8f %s %d%n", r.step(), r.loss(), Math.exp(Math.min(r.loss(), 50)),
                            r.lr(), LocalDateTime.now(), r.step()));
                    log.flush();
                    bar.stepTo(r.step());
                    bar.setExtraMessage(String.format(" loss %.4f  %.0f tok/s", r.loss(), tps));
                    if (saveEvery > 0 && r.step() % saveEvery == 0 && !trainer.done()) {
                        trainer.saveCheckpoint(checkpointDir(), runFingerprint);
                    }
                }
            }
            trainer.saveCheckpoint(checkpointDir(), runFingerprint);
            writeLossChart();
        } catch (IOException e) {
            throw new UncheckedIOException("writing to " + outDir + ": " + e.getMessage(), e);
        }
        return results;
    }

    /**
     * Keeps the lines of a log whose step (JSON "step", or the first field) is at most {@code step}. A last line that
     * does not parse is what a kill during a write leaves: it is dropped (with a note). A bad line before the last
     * is an error naming the file and the line.
     */
    static void dropLinesAfter(Path log, long step, boolean json) throws IOException {
        if (!Files.isRegularFile(log)) return;
        String text;
        try {
            text = new String(Files.readAllBytes(log), StandardCharsets.UTF_8);
        } catch (OutOfMemoryError e) {
            throw new IllegalArgumentException(log + " is too large to be a training log (" + Files.size(log) + " bytes)");
        }
        List<String> lines = new ArrayList<>(List.of(text.split("\n", -1)));
        if (!lines.isEmpty() && lines.get(lines.size() - 1).isEmpty()) lines.remove(lines.size() - 1);
        List<String> kept = new ArrayList<>();
        for (int i = 0; i < lines.size(); i++) {
            String line = lines.get(i);
            if (line.isBlank()) continue;
            Long s = stepOf(line, json);
            if (s == null) {
                if (i == lines.size() - 1) {
                    System.err.println("note: " + log + ": dropped its unfinished last line (left by a run stopped while writing it)");
                    continue;
                }
                throw new IllegalArgumentException(log + " line " + (i + 1) + ": not a " + (json ? "metrics line (JSON object with a step)" : "log line (step first)")
                        + "; repair or remove the file to resume");
            }
            if (s <= step) kept.add(line);
        }
        String rewritten = kept.isEmpty() ? "" : String.join("\n", kept) + "\n";
        if (!rewritten.equals(text)) Trainer.writeAtomically(log, rewritten);
    }

    private static Long stepOf(String line, boolean json) {
        try {
            if (!json) return Long.parseLong(line.substring(0, line.indexOf(' ')));
            JsonObject o = com.google.gson.JsonParser.parseString(line).getAsJsonObject();
            return o.get("step").getAsLong();
        } catch (RuntimeException e) {   // not JSON, not an object, no step, not a number, no space
            return null;
        }
    }

    /** loss.png from every line of metrics.jsonl (this run and any run it resumed). */
    private void writeLossChart() throws IOException {
        List<double[]> points = new ArrayList<>();
        for (String line : Files.readAllLines(outDir.resolve("metrics.jsonl"), StandardCharsets.UTF_8)) {
            if (line.isBlank()) continue;
            JsonObject o = com.google.gson.JsonParser.parseString(line).getAsJsonObject();
            if (o.has("state_only")) continue;
            points.add(new double[]{o.get("step").getAsDouble(), o.get("loss").getAsDouble()});
        }
        Charts.lines(outDir.resolve("loss.png"), "training loss", "step", "loss (nats)", Map.of("loss", points), false);
    }
}
