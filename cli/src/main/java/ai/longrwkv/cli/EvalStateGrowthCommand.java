package ai.longrwkv.cli;

import ai.longrwkv.core.io.AtomicFiles;
import ai.longrwkv.core.util.Progress;
import ai.longrwkv.datasets.Lengths;
import ai.longrwkv.datasets.synth.Haystack;
import ai.longrwkv.datasets.synth.PasskeyTask;
import ai.longrwkv.eval.StateGrowth;
import me.tongfei.progressbar.ProgressBar;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import java.util.SplittableRandom;
import java.util.concurrent.Callable;

/** `eval state-growth`: what a key leaves in the WKV state after T tokens of filler, as a share of the state. */
@Command(name = "state-growth", mixinStandardHelpOptions = true, sortOptions = false,
        description = {"How much of a pass key is left in the recurrent state after T tokens of filler.",
                "Feeds the passkey prompt's intro and needle twice, with two different keys, then the same filler, and prints",
                "at each length, per layer and for long-memory key channels (at least half a value survives the longest",
                "length) and the others: the state's norm |S| and the key's trace |S_A - S_B| with its share of |S|.",
                "A share that falls as 1/T means the filler accumulates in the channels that hold the key: retrieval then",
                "stops where the share gets too small to read, whatever the channels' decay. Writes DIR/state-growth.csv.",
                "Example: --model rwkv-final.pth --lengths 1k,4k,16k,64k,128k --out growth"})
final class EvalStateGrowthCommand implements Callable<Integer> {
    @Mixin EvalModelOptions modelOptions;

    @Option(names = "--lengths", defaultValue = "1k,2k,4k,8k,16k,32k,64k,128k", paramLabel = "L,...",
            description = "Prompt lengths in tokens at which to measure (default: ${DEFAULT-VALUE}).")
    String lengths;

    @Option(names = "--haystack", paramLabel = "FILE", description = "Filler from this UTF-8 text file instead of the Landmark filler.")
    Path haystack;

    @Option(names = "--seed", defaultValue = "1", description = "Random seed of the two keys and the filler (default: ${DEFAULT-VALUE}).")
    long seed;

    @Option(names = "--per-head", description = "Also a row per head after each layer's row of all heads (ln_x normalises each head"
            + " on its own, so a head's share is what its readout sees).")
    boolean perHead;

    @Option(names = "--out", paramLabel = "DIR", description = "Also write DIR/state-growth.csv.")
    Path out;

    @Override
    public Integer call() throws Exception {
        List<Integer> list = Lengths.parseList("--lengths", lengths);
        int[] checkpoints = list.stream().mapToInt(Integer::intValue).sorted().distinct().toArray();
        try (EvalModelOptions.Loaded m = modelOptions.load()) {
            SplittableRandom rng = new SplittableRandom(seed);
            int keyA = 10000 + rng.nextInt(40000), keyB;
            do keyB = 10000 + rng.nextInt(40000); while (keyB == keyA);
            int[] a = m.tokenizer.encode(PasskeyTask.INTRO + PasskeyTask.needleText(keyA));
            int[] b = m.tokenizer.encode(PasskeyTask.INTRO + PasskeyTask.needleText(keyB));
            if (a.length != b.length) {   // a subword tokenizer may split two keys into different numbers of tokens
                throw new IllegalArgumentException("the needles of keys " + keyA + " and " + keyB + " tokenize to different lengths ("
                        + a.length + ", " + b.length + "); try another --seed");
            }
            int longest = checkpoints[checkpoints.length - 1];
            if (checkpoints[0] <= a.length) {
                throw new IllegalArgumentException("--lengths: " + checkpoints[0] + " is not longer than the intro and needle (" + a.length + " tokens)");
            }
            Haystack hay = haystack == null ? Haystack.synthetic(m.tokenizer) : Haystack.fromFile(haystack, m.tokenizer);
            int[] filler = hay.take(longest - a.length, rng).tokens();
            int layers = m.model.config().nLayer();
            float[][] decay = new float[layers][];
            for (int l = 0; l < layers; l++) {
                decay[l] = m.backend.download(m.model.params().get("blocks." + l + ".att.time_decay")).data();
            }
            boolean[][] longChannel = StateGrowth.longChannels(decay, longest);
            List<StateGrowth.Row> rows;
            try (ProgressBar bar = Progress.bar("state-growth " + m.label, 2L * longest, "tok")) {
                rows = StateGrowth.measure(m.model, m.initial, a, b, filler, checkpoints, longChannel, modelOptions.chunkLen, bar::stepBy, perHead);
            }
            System.out.printf("%s: keys %d and %d, filler %s; long-memory channels: w^%d >= 1/2%n", m.label, keyA, keyB, hay.name(), longest);
            for (int l = 0; l < layers; l++) {
                int count = 0;
                for (boolean x : longChannel[l]) if (x) count++;
                System.out.printf("  layer %d: %d of %d key channels long%n", l, count, longChannel[l].length);
            }
            String headCol = perHead ? String.format("%5s ", "head") : "";
            System.out.printf("%8s %5s %s%12s %12s %9s %12s %12s %9s%n", "tokens", "layer", headCol, "|S| long", "key long", "share", "|S| short", "key short", "share");
            StringBuilder csv = new StringBuilder("tokens,layer,head,long_norm,long_key,long_share,short_norm,short_key,short_share\n");
            for (StateGrowth.Row r : rows) {
                String head = r.head() < 0 ? "all" : Integer.toString(r.head());
                System.out.printf(Locale.ROOT, "%8s %5d %s%12.4g %12.4g %9.2e %12.4g %12.4g %9.2e%n", Lengths.format(r.tokens()), r.layer(),
                        perHead ? String.format("%5s ", head) : "", r.longNorm(), r.longKey(), r.longShare(), r.shortNorm(), r.shortKey(), r.shortShare());
                csv.append(String.format(Locale.ROOT, "%d,%d,%s,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g%n", r.tokens(), r.layer(), head, r.longNorm(), r.longKey(),
                        r.longShare(), r.shortNorm(), r.shortKey(), r.shortShare()));
            }
            if (out != null) {
                Files.createDirectories(out);
                AtomicFiles.writeString(out.resolve("state-growth.csv"), csv.toString());
                System.out.println("wrote " + out.resolve("state-growth.csv"));
            }
        }
        return 0;
    }
}
