package ai.longrwkv.cli;

import ai.longrwkv.core.tokenizer.Tokenizer;
import ai.longrwkv.core.tokenizer.Tokenizers;
import ai.longrwkv.datasets.Lengths;
import ai.longrwkv.datasets.synth.Haystack;
import ai.longrwkv.datasets.synth.SynthDatasetWriter;
import ai.longrwkv.datasets.synth.SynthTask;
import ai.longrwkv.datasets.synth.SynthTasks;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.Callable;

/** `data synth`: synthetic long-context retrieval samples. */
@Command(name = "synth", mixinStandardHelpOptions = true,
        description = {"Generate synthetic retrieval samples of exact token lengths as a dataset (binidx + mask, answer tokens",
                "trained, the rest masked) plus PREFIX.samples.jsonl (key, answer, needle and answer positions per sample).",
                "  passkey   the Landmark-attention pass key test (key 1..50000)",
                "  niah      one RULER-style needle: 'One of the special magic numbers for {key} is: {value}.'",
                "  multikey  several RULER needles with different keys (--needles, default 4), one asked for",
                "  persona   long roleplay chats in --template that state facts early and ask one at the end (eval persona)",
                "Deterministic: the same seed gives the same bytes; sample i of length L does not depend on the others."})
final class DataSynthCommand implements Callable<Integer> {
    @Parameters(index = "0", paramLabel = "TASK", description = "passkey | niah | multikey | persona")
    String task;

    @Option(names = "--tokenizer", required = true, paramLabel = "SPEC", description = "'world:PATH' or 'bytes'; lengths are in its tokens.")
    String tokenizerSpec;

    @Option(names = "--lengths", required = true, paramLabel = "L,...", description = "Sample lengths in tokens, e.g. 1k,4k,16k,32k,64k,128k (k = 1024).")
    String lengths;

    @Option(names = "--count", required = true, paramLabel = "N", description = "Samples per length.")
    int count;

    @Option(names = "--seed", defaultValue = "1", description = "Random seed (default: ${DEFAULT-VALUE}).")
    long seed;

    @Option(names = "--out", required = true, paramLabel = "PREFIX", description = "Output prefix.")
    Path out;

    @Option(names = "--haystack", paramLabel = "FILE", description = "Filler from this UTF-8 text file (repeated as needed) instead of the synthetic one.")
    Path haystack;

    @Option(names = "--depths", paramLabel = "P,...", description = "Needle depths in percent of the filler, 0..100, used in turn, as in `eval --depths` (\"0,25,...,100\"; default: uniformly random per sample).")
    String depths;

    @Option(names = "--needles", defaultValue = "4", description = "Needles per multikey sample (default: ${DEFAULT-VALUE}).")
    int needles;

    @Option(names = "--template", paramLabel = "world|metharme|FILE", description = "persona: the chat template (default: world).")
    String template;

    @Option(names = "--facts", paramLabel = "F,...", description = "persona: facts stated, one asked: user-name, char-name, pet, promise, number (default: all).")
    String facts;

    @Option(names = "--filler-chats", paramLabel = "FILE", description = "persona: filler exchanges from this chat or PIPPA jsonl file (default: generated small talk).")
    Path fillerChats;

    @Option(names = "--vary", description = "passkey: each sample draws its needle wording (5 variants, the Landmark one among them) and its key's"
            + " number of digits (1..5); the question stays the eval's. For other fillers give --haystack.")
    boolean vary;

    @Option(names = "--train-end", description = "Also train the end-of-document token 0 after each answer (default: only the answer),"
            + " so that a model trained on the answer alone learns where it ends.")
    boolean trainEnd;

    @Override
    public Integer call() {
        Tokenizer tokenizer = Tokenizers.parse(tokenizerSpec);
        List<Integer> lengthList = Lengths.parseList("--lengths", lengths);
        double[] depthList = parseDepths(depths);
        boolean persona = task.strip().equalsIgnoreCase("persona");
        if (!persona && (template != null || facts != null || fillerChats != null)) {
            throw new IllegalArgumentException("--template, --facts and --filler-chats are options of the persona task, not of " + task);
        }
        if (persona && haystack != null) throw new IllegalArgumentException("--haystack is for passkey, niah and multikey; persona takes --filler-chats");
        if (persona && vary) throw new IllegalArgumentException("--vary is an option of the passkey task, not of persona");
        SynthTask synthTask;
        String fillerName;
        if (persona) {
            ai.longrwkv.datasets.synth.FillerChats filler = fillerChats == null ? ai.longrwkv.datasets.synth.FillerChats.synthetic()
                    : ai.longrwkv.datasets.synth.FillerChats.fromFile(fillerChats);
            synthTask = new ai.longrwkv.datasets.synth.PersonaTask(tokenizer, ai.longrwkv.datasets.build.ChatTemplate.parse(template == null ? "world" : template),
                    filler, ai.longrwkv.datasets.synth.PersonaTask.parseFacts(facts), "User");
            fillerName = filler.name();
        } else {
            Haystack hay = haystack == null ? Haystack.synthetic(tokenizer) : Haystack.fromFile(haystack, tokenizer);
            synthTask = SynthTasks.create(task, tokenizer, hay, needles, vary);
            fillerName = hay.name();
        }
        SynthDatasetWriter.Report r = SynthDatasetWriter.write(synthTask, tokenizer, tokenizerSpec.strip(), fillerName, lengthList, count,
                seed, depthList, trainEnd, out);
        System.out.printf("wrote %s.{bin,idx,mask,meta.json,samples.jsonl}: %,d %s samples, %,d tokens%n", r.prefix(), r.samples(),
                synthTask.name(), r.tokens());
        return 0;
    }

    /**
     * --depths in percent (0..100, "0,10,...,100" as in eval --depths) to fractions. Values that all lie in 0..1 (and
     * are not all 0) look like fractions, which this option took before: refused with what to write instead, unless a
     * value carries a % sign ("0.5%": really half a percent).
     */
    static double[] parseDepths(String text) {
        if (text == null || text.isBlank()) return null;
        boolean explicitPercent = text.contains("%");
        double[] pct = ai.longrwkv.eval.Grid.depthsPercent("--depths", text.replace("%", ""));
        boolean allAtMostOne = true, anyAboveZero = false;
        for (double p : pct) {
            allAtMostOne &= p <= 1;
            anyAboveZero |= p > 0;
        }
        if (!explicitPercent && allAtMostOne && anyAboveZero) {
            StringBuilder asPercent = new StringBuilder();
            for (double p : pct) {
                double v = Math.round(p * 100 * 1e6) / 1e6;
                asPercent.append(asPercent.length() == 0 ? "" : ",").append(v == Math.rint(v) ? Long.toString((long) v) : Double.toString(v));
            }
            throw new IllegalArgumentException("--depths is in percent (0..100, like eval --depths): '" + text + "' would put every needle in the first 1%"
                    + " of the filler. For fractions write --depths " + asPercent + "; for under 1% write the values with a % sign (e.g. 0.5%)");
        }
        double[] out = new double[pct.length];
        for (int i = 0; i < pct.length; i++) out[i] = pct[i] / 100;
        return out;
    }
}
