package ai.longrwkv.eval;

import ai.longrwkv.core.model.Rwkv5Model;
import ai.longrwkv.core.model.RwkvState;
import ai.longrwkv.core.tensor.HostTensor;
import ai.longrwkv.core.tokenizer.Tokenizer;
import ai.longrwkv.core.util.Charts;
import ai.longrwkv.core.util.Progress;
import ai.longrwkv.datasets.Lengths;
import ai.longrwkv.datasets.synth.Sample;
import ai.longrwkv.datasets.synth.SynthTask;
import ai.longrwkv.datasets.synth.SynthTasks;
import com.google.gson.Gson;
import com.google.gson.GsonBuilder;
import com.google.gson.JsonArray;
import com.google.gson.JsonObject;
import me.tongfei.progressbar.ProgressBar;

import java.io.BufferedWriter;
import java.io.IOException;
import java.io.PrintStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;

/**
 * Passkey and needle-in-a-haystack evaluation over a grid of lengths x depths, several trials per cell. Each prompt is
 * the sample `data synth` would make for the same seed (sample index trial * depths + depth index, the depth list as
 * --depths), prefilled in chunks from the initial state, answered by greedy decoding and scored.
 *
 * <p>Besides the score, each trial records the answer-token loss: the mean cross-entropy of the true answer tokens
 * given the prompt (teacher forced). It moves long before accuracy does, so it shows progress that 0/1 scores hide.
 *
 * <p>Writes to the output directory: trials.jsonl (one record per trial), summary.csv (one row per length x depth
 * cell: trials, accuracy, answer loss, distance), heatmap.png (x = length, y = depth %, colour = accuracy) and
 * run.json (settings, totals, throughput).
 */
public final class RetrievalEval {
    private static final Gson GSON = new GsonBuilder().disableHtmlEscaping().create();

    /**
     * @param name        task label for files and titles ("passkey", "niah-multikey")
     * @param lengths     prompt lengths in tokens (prompt + answer, as `data synth` counts them)
     * @param depthsPct   depths of the queried needle in percent of the filler
     * @param maxNewTokens greedy tokens generated per trial
     * @param chunkLen    prefill chunk length
     * @param stops       strings that end the greedy answer (cut before them), e.g. the end of a chat turn
     */
    public record Config(String name, SynthTask task, Scoring scoring, List<Integer> lengths, double[] depthsPct, int trials,
                         long seed, int maxNewTokens, int chunkLen, Path outDir, List<String> stops) {
        /** Answers that run to maxNewTokens. */
        public Config(String name, SynthTask task, Scoring scoring, List<Integer> lengths, double[] depthsPct, int trials,
                      long seed, int maxNewTokens, int chunkLen, Path outDir) {
            this(name, task, scoring, lengths, depthsPct, trials, seed, maxNewTokens, chunkLen, outDir, List.of());
        }

        public Config {
            stops = List.copyOf(stops);
            if (lengths.isEmpty()) throw new IllegalArgumentException("--lengths is empty");
            if (depthsPct.length == 0) throw new IllegalArgumentException("--depths is empty");
            if (trials < 1) throw new IllegalArgumentException("--trials must be >= 1, got " + trials);
            if (maxNewTokens < 1) throw new IllegalArgumentException("--max-new-tokens must be >= 1, got " + maxNewTokens);
            if (chunkLen < 1) throw new IllegalArgumentException("--chunk-len must be >= 1, got " + chunkLen);
        }

        double[] depthFractions() {
            return Arrays.stream(depthsPct).map(d -> d / 100).toArray();
        }
    }

    /**
     * One trial's outcome. {@code distance}: tokens from the end of the queried needle to the answer, what the
     * model must carry in its state (compare it with the chunk length a model was trained with).
     */
    public record Trial(int length, double depthPct, int trial, double actualDepth, int distance, String key, List<String> expected,
                        String output, double score, double answerLoss, int promptTokens, double prefillSeconds, double generateSeconds) { }

    /** The mean over a cell's trials. */
    public record Cell(int length, double depthPct, int trials, double accuracy, double answerLoss, double distance) { }

    public record Report(List<Trial> trials, List<Cell> cells, long prefillTokens, double prefillSeconds) {
        public double prefillTokensPerSecond() {
            return prefillTokens / Math.max(prefillSeconds, 1e-9);
        }

        /** Mean accuracy over every depth of a length. */
        public double accuracy(int length) {
            return cells.stream().filter(c -> c.length() == length).mapToDouble(Cell::accuracy).average().orElse(Double.NaN);
        }

        /** Mean answer-token loss over every depth of a length. */
        public double answerLoss(int length) {
            return cells.stream().filter(c -> c.length() == length).mapToDouble(Cell::answerLoss).average().orElse(Double.NaN);
        }
    }

    private RetrievalEval() { }

    /**
     * Runs the grid. {@code initial} (zeros or a tuned state) is left unchanged; every trial starts from a copy.
     * {@code out} gets the table at the end (null: print nothing).
     */
    public static Report run(Rwkv5Model model, RwkvState initial, Tokenizer tokenizer, Config cfg, String modelLabel, PrintStream out) {
        if (tokenizer.vocabSize() != model.config().vocabSize()) {
            throw new IllegalArgumentException("the tokenizer's vocabulary (" + tokenizer.vocabSize() + ") does not match the model's ("
                    + model.config().vocabSize() + "): use --tokenizer bytes for vocab 256, world:PATH for 65536");
        }
        double[] depths = cfg.depthFractions();
        // build one sample per length first, so that a length too short for the prompt fails before any work
        for (int length : cfg.lengths()) SynthTasks.sample(cfg.task(), cfg.seed(), length, 0, depths);
        long totalTokens = 0;
        for (int length : cfg.lengths()) totalTokens += (long) length * depths.length * cfg.trials();

        createDirectories(cfg.outDir());
        Path trialsFile = cfg.outDir().resolve("trials.jsonl");
        Path partial = cfg.outDir().resolve("trials.jsonl.partial");
        List<Trial> trials = new ArrayList<>();
        long prefillTokens = 0;
        double prefillSeconds = 0;
        try (BufferedWriter w = Files.newBufferedWriter(partial, StandardCharsets.UTF_8);
             ProgressBar bar = Progress.bar("eval " + cfg.name(), totalTokens, "tok")) {
            for (int length : cfg.lengths()) {
                for (int t = 0; t < cfg.trials(); t++) {
                    for (int d = 0; d < depths.length; d++) {
                        Sample s = SynthTasks.sample(cfg.task(), cfg.seed(), length, t * depths.length + d, depths);
                        Trial trial = runTrial(model, initial, tokenizer, cfg, s, cfg.depthsPct()[d], t, bar);
                        trials.add(trial);
                        prefillTokens += trial.promptTokens();
                        prefillSeconds += trial.prefillSeconds();
                        w.write(GSON.toJson(toJson(cfg, trial)));
                        w.write('\n');
                        w.flush();   // a long run can be followed with tail -f
                        bar.stepBy(s.length() - trial.promptTokens());   // the answer tokens the bar counted in
                    }
                }
            }
        } catch (IOException e) {
            throw new UncheckedIOException("writing " + partial + ": " + e.getMessage(), e);
        }
        move(partial, trialsFile);
        List<Cell> cells = summarize(cfg, trials);
        Report report = new Report(trials, cells, prefillTokens, prefillSeconds);
        writeSummary(cfg.outDir().resolve("summary.csv"), cells);
        heatmap(cfg, report, modelLabel);
        writeRunInfo(cfg, report, modelLabel, tokenizer);
        if (out != null) printTable(out, cfg, report, modelLabel);
        return report;
    }

    private static Trial runTrial(Rwkv5Model model, RwkvState initial, Tokenizer tokenizer, Config cfg, Sample s, double depthPct,
                                  int trialIndex, ProgressBar bar) {
        int[] prompt = s.promptTokens();
        List<String> expected = expectedAnswers(s);
        try (RwkvState state = initial.copy(model.backend())) {
            Prefill.Timed pre = Prefill.timed(model, prompt, state, cfg.chunkLen(), bar::stepBy);
            double answerLoss;
            try (RwkvState forked = state.copy(model.backend())) {
                answerLoss = answerLoss(model, forked, pre.logits(), s.answerTokens(), cfg.chunkLen());
            }
            long t0 = System.nanoTime();
            Generator.Result r = Generator.generate(tokenizer, tok -> model.step(tok, state), pre.logits(), Sampler.greedy(),
                    cfg.maxNewTokens(), cfg.stops(), null);
            double genSeconds = (System.nanoTime() - t0) / 1e9;
            double score = cfg.scoring().score(r.text(), expected);
            Sample.Needle needle = s.queriedNeedle();
            int distance = s.answerStart() - (needle.start() + needle.length());
            return new Trial(s.length(), depthPct, trialIndex, s.depth(), distance, s.key(), expected, r.text(), score, answerLoss,
                    prompt.length, pre.seconds(), genSeconds);
        }
    }

    /**
     * What a correct answer contains: the value of every queried needle (one for passkey, niah and multikey; several
     * for tasks that ask for several), in prompt order, without repeats.
     */
    static List<String> expectedAnswers(Sample s) {
        LinkedHashSet<String> values = new LinkedHashSet<>();
        for (Sample.Needle n : s.needles()) if (n.queried()) values.add(n.value());
        if (values.isEmpty()) values.add(s.answer());
        return List.copyOf(values);
    }

    /**
     * Mean cross-entropy (nats) of the answer tokens given the prompt: the first from the prefill's logits, the rest by
     * feeding the answer itself (teacher forcing) from the state after the prompt, which this advances.
     */
    static double answerLoss(Rwkv5Model model, RwkvState afterPrompt, float[] firstLogits, int[] answer, int chunkLen) {
        double sum = nll(firstLogits, 0, firstLogits.length, answer[0]);
        int v = model.config().vocabSize();
        for (int from = 0; from + 1 < answer.length; from += chunkLen) {
            int to = Math.min(answer.length - 1, from + chunkLen);
            try (Rwkv5Model.Activations a = model.forward(Arrays.copyOfRange(answer, from, to), afterPrompt, false, true)) {
                HostTensor logits = model.backend().download(a.logits());
                for (int t = from; t < to; t++) sum += nll(logits.data(), (t - from) * v, v, answer[t + 1]);
            }
        }
        return sum / answer.length;
    }

    /** -log softmax(row)[target] for the row data[offset, offset + v). */
    static double nll(float[] data, int offset, int v, int target) {
        double max = Double.NEGATIVE_INFINITY;
        for (int i = 0; i < v; i++) max = Math.max(max, data[offset + i]);
        double sum = 0;
        for (int i = 0; i < v; i++) sum += Math.exp(data[offset + i] - max);
        return Math.log(sum) + max - data[offset + target];
    }

    static List<Cell> summarize(Config cfg, List<Trial> trials) {
        List<Cell> cells = new ArrayList<>();
        for (int length : cfg.lengths()) {
            for (double depth : cfg.depthsPct()) {
                double score = 0, loss = 0, distance = 0;
                int n = 0;
                for (Trial t : trials) {
                    if (t.length() == length && t.depthPct() == depth) {
                        score += t.score();
                        loss += t.answerLoss();
                        distance += t.distance();
                        n++;
                    }
                }
                cells.add(new Cell(length, depth, n, n == 0 ? Double.NaN : score / n, n == 0 ? Double.NaN : loss / n,
                        n == 0 ? Double.NaN : distance / n));
            }
        }
        return cells;
    }

    private static JsonObject toJson(Config cfg, Trial t) {
        JsonObject o = new JsonObject();
        o.addProperty("task", cfg.name());
        o.addProperty("length", t.length());
        o.addProperty("depth_pct", t.depthPct());
        o.addProperty("depth_actual", Math.round(t.actualDepth() * 1e6) / 1e6);
        o.addProperty("distance", t.distance());
        o.addProperty("trial", t.trial());
        o.addProperty("key", t.key());
        JsonArray e = new JsonArray();
        t.expected().forEach(e::add);
        o.add("expected", e);
        o.addProperty("output", t.output());
        o.addProperty("score", t.score());
        o.addProperty("correct", t.score() == 1);
        o.addProperty("answer_loss", Math.round(t.answerLoss() * 1e6) / 1e6);
        o.addProperty("prompt_tokens", t.promptTokens());
        o.addProperty("prefill_seconds", Math.round(t.prefillSeconds() * 1e4) / 1e4);
        o.addProperty("generate_seconds", Math.round(t.generateSeconds() * 1e4) / 1e4);
        return o;
    }

    static void writeSummary(Path csv, List<Cell> cells) {
        StringBuilder sb = new StringBuilder("length,depth_pct,trials,accuracy,answer_loss,distance\n");
        for (Cell c : cells) {
            sb.append(String.format(Locale.ROOT, "%d,%s,%d,%.4f,%.4f,%.1f%n", c.length(), pct(c.depthPct()), c.trials(), c.accuracy(),
                    c.answerLoss(), c.distance()));
        }
        writeAtomically(csv, sb.toString());
    }

    private static void heatmap(Config cfg, Report r, String modelLabel) {
        int nx = cfg.lengths().size(), ny = cfg.depthsPct().length;
        String[] xs = cfg.lengths().stream().map(Lengths::format).toArray(String[]::new);
        String[] ys = Arrays.stream(cfg.depthsPct()).mapToObj(RetrievalEval::pct).toArray(String[]::new);
        double[][] acc = new double[ny][nx];
        for (Cell c : r.cells()) {
            acc[indexOf(cfg.depthsPct(), c.depthPct())][cfg.lengths().indexOf(c.length())] = c.accuracy();
        }
        Charts.heatmap(cfg.outDir().resolve("heatmap.png"), cfg.name() + " accuracy: " + modelLabel, "context length (tokens)",
                "depth (% of the filler)", xs, ys, acc, 0, 1);
    }

    private static void writeRunInfo(Config cfg, Report r, String modelLabel, Tokenizer tokenizer) {
        JsonObject o = new JsonObject();
        o.addProperty("task", cfg.name());
        o.addProperty("model", modelLabel);
        o.addProperty("tokenizer", tokenizer.name());
        o.addProperty("scoring", cfg.scoring().name().toLowerCase(Locale.ROOT));
        JsonArray ls = new JsonArray();
        cfg.lengths().forEach(ls::add);
        o.add("lengths", ls);
        JsonArray ds = new JsonArray();
        for (double d : cfg.depthsPct()) ds.add(d);
        o.add("depths_pct", ds);
        o.addProperty("trials", cfg.trials());
        o.addProperty("seed", cfg.seed());
        o.addProperty("max_new_tokens", cfg.maxNewTokens());
        o.addProperty("chunk_len", cfg.chunkLen());
        if (!cfg.stops().isEmpty()) {
            JsonArray st = new JsonArray();
            cfg.stops().forEach(st::add);
            o.add("stops", st);
        }
        if (cfg.task() instanceof ai.longrwkv.datasets.synth.PersonaTask p) {
            JsonObject t = new JsonObject();
            p.template().describe().forEach(t::addProperty);
            o.add("template", t);
            o.addProperty("facts", String.join(",", p.facts()));
            o.addProperty("filler", p.filler().name());
        }
        JsonObject byLength = new JsonObject();
        JsonObject lossByLength = new JsonObject();
        for (int length : cfg.lengths()) {
            byLength.addProperty(Integer.toString(length), r.accuracy(length));
            lossByLength.addProperty(Integer.toString(length), r.answerLoss(length));
        }
        o.add("accuracy_by_length", byLength);
        o.add("answer_loss_by_length", lossByLength);
        o.addProperty("prefill_tokens", r.prefillTokens());
        o.addProperty("prefill_seconds", r.prefillSeconds());
        o.addProperty("prefill_tokens_per_second", r.prefillTokensPerSecond());
        writeAtomically(cfg.outDir().resolve("run.json"), new GsonBuilder().setPrettyPrinting().serializeSpecialFloatingPointValues()
                .create().toJson(o) + "\n");
    }

    static void printTable(PrintStream out, Config cfg, Report r, String modelLabel) {
        out.printf("%s accuracy, %s (%d trial%s per cell)%n", cfg.name(), modelLabel, cfg.trials(), cfg.trials() == 1 ? "" : "s");
        StringBuilder head = new StringBuilder(String.format("%-12s", "depth %"));
        for (int length : cfg.lengths()) head.append(String.format("%8s", Lengths.format(length)));
        out.println(head);
        for (double depth : cfg.depthsPct()) {
            StringBuilder row = new StringBuilder(String.format("%-12s", pct(depth)));
            for (int length : cfg.lengths()) {
                for (Cell c : r.cells()) if (c.length() == length && c.depthPct() == depth) row.append(String.format(Locale.ROOT, "%8.2f", c.accuracy()));
            }
            out.println(row);
        }
        StringBuilder all = new StringBuilder(String.format("%-12s", "all"));
        StringBuilder loss = new StringBuilder(String.format("%-12s", "answer loss"));
        for (int length : cfg.lengths()) {
            all.append(String.format(Locale.ROOT, "%8.2f", r.accuracy(length)));
            loss.append(String.format(Locale.ROOT, "%8.3f", r.answerLoss(length)));
        }
        out.println(all);
        out.println(loss);
        out.printf(Locale.ROOT, "prefill: %,d tokens in %.1f s, %,.0f tokens/s (chunks of %d)%n", r.prefillTokens(), r.prefillSeconds(),
                r.prefillTokensPerSecond(), cfg.chunkLen());
        out.println("wrote " + cfg.outDir().resolve("trials.jsonl") + ", summary.csv, heatmap.png, run.json");
    }

    static String pct(double d) {
        return d == Math.rint(d) ? Long.toString((long) d) : Double.toString(d);
    }

    private static int indexOf(double[] a, double v) {
        for (int i = 0; i < a.length; i++) if (a[i] == v) return i;
        throw new IllegalStateException("no " + v);
    }

    static void createDirectories(Path dir) {
        try {
            Files.createDirectories(dir);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot create " + dir + ": " + e.getMessage(), e);
        }
    }

    static void writeAtomically(Path file, String text) {
        Path tmp = file.resolveSibling(file.getFileName() + ".tmp");
        try {
            Files.writeString(tmp, text, StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new UncheckedIOException("writing " + file + ": " + e.getMessage(), e);
        }
        move(tmp, file);
    }

    private static void move(Path from, Path to) {
        try {
            Files.move(from, to, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        } catch (IOException e) {
            throw new UncheckedIOException("renaming " + from + " to " + to + ": " + e.getMessage(), e);
        }
    }
}
