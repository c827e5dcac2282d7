package ai.longrwkv.datasets.synth;

import ai.longrwkv.core.tokenizer.Tokenizer;

import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.SplittableRandom;

/**
 * RULER-style needles (arXiv 2404.06654): "One of the special magic numbers for {key} is: {value}." with
 * adjective-noun keys and 7-digit values.
 * <ul>
 * <li>niah ({@code needles = 1}): one needle, asked for.</li>
 * <li>multikey ({@code needles = k > 1}): k needles with different keys and values; one is asked for (it sits at the
 * requested depth), the others are distractors at uniformly random depths.</li>
 * </ul>
 * <pre>
 * Some special magic numbers are hidden within the following text. Make sure to memorize it. I will quiz you about the numbers afterwards.
 * {filler with the needles, each on its own line}
 * What is the special magic number for {key} mentioned in the provided text? The special magic number for {key} mentioned in the provided text is{answer: " 1234567"}
 * </pre>
 */
public final class NeedleTask implements SynthTask {
    public static final String INTRO = "Some special magic numbers are hidden within the following text. Make sure to memorize it. "
            + "I will quiz you about the numbers afterwards.\n";

    private final Tokenizer tokenizer;
    private final Haystack haystack;
    private final int needles;

    public NeedleTask(Tokenizer tokenizer, Haystack haystack, int needles) {
        if (needles < 1 || needles > 100) throw new IllegalArgumentException("needle count must be 1..100, got " + needles);
        this.tokenizer = tokenizer;
        this.haystack = haystack;
        this.needles = needles;
    }

    public static String needleText(String key, String value) {
        return "\nOne of the special magic numbers for " + key + " is: " + value + ".\n";
    }

    public static String question(String key) {
        return "\nWhat is the special magic number for " + key + " mentioned in the provided text? The special magic number for "
                + key + " mentioned in the provided text is";
    }

    @Override
    public String name() {
        return needles == 1 ? "niah" : "multikey";
    }

    public int needles() {
        return needles;
    }

    @Override
    public Sample generate(int lengthTokens, double depth, SplittableRandom rng) {
        PasskeyTask.checkDepth(depth);
        Set<String> keys = new HashSet<>();
        Set<Integer> values = new HashSet<>();
        List<PromptAssembler.NeedleSpec> specs = new ArrayList<>();
        int queried = rng.nextInt(needles);
        String queriedKey = null, queriedValue = null;
        for (int i = 0; i < needles; i++) {
            String key;
            do {
                key = Words.key(rng);
            } while (!keys.add(key));
            int value;
            do {
                value = rng.nextInt(1_000_000, 10_000_000);
            } while (!values.add(value));
            String v = Integer.toString(value);
            double d = i == queried ? depth : rng.nextDouble();
            specs.add(new PromptAssembler.NeedleSpec(needleText(key, v), key, v, d, i == queried));
            if (i == queried) {
                queriedKey = key;
                queriedValue = v;
            }
        }
        return PromptAssembler.assemble(name(), tokenizer, haystack, lengthTokens, INTRO, specs, question(queriedKey),
                queriedValue, queriedKey, rng);
    }
}
