package ai.longrwkv.datasets.synth;

import ai.longrwkv.core.tokenizer.Tokenizer;

import java.util.List;
import java.util.SplittableRandom;

/**
 * Passkey retrieval with the wording of Mohtashami and Jaggi 2023 ("Landmark Attention"), parts joined by newlines:
 * <pre>
 * There is an important info hidden inside a lot of irrelevant text. Find it and memorize them. I will quiz you about the important information there.
 * {filler prefix}
 * The pass key is {K}. Remember it. {K} is the pass key.
 * {filler suffix}
 * What is the pass key? The pass key is{answer: " K"}
 * </pre>
 * K is a random integer 1..50000; the filler is {@link Haystack#PASSKEY_FILLER} unless another haystack is given.
 * Lengths and depth are in tokens of the given tokenizer.
 */
public final class PasskeyTask implements SynthTask {
    public static final String INTRO = "There is an important info hidden inside a lot of irrelevant text. Find it and memorize them. "
            + "I will quiz you about the important information there.\n";
    public static final String QUESTION = "\nWhat is the pass key? The pass key is";
    public static final int MAX_KEY = 50000;

    private final Tokenizer tokenizer;
    private final Haystack haystack;

    public PasskeyTask(Tokenizer tokenizer, Haystack haystack) {
        this.tokenizer = tokenizer;
        this.haystack = haystack;
    }

    /** With the synthetic filler. */
    public PasskeyTask(Tokenizer tokenizer) {
        this(tokenizer, Haystack.synthetic(tokenizer));
    }

    /** One sample; the pass key is the rng's first draw. */
    public static Sample generate(Tokenizer tokenizer, int lengthTokens, double depth, SplittableRandom rng) {
        return new PasskeyTask(tokenizer).generate(lengthTokens, depth, rng);
    }

    public static String needleText(int passKey) {
        return "\nThe pass key is " + passKey + ". Remember it. " + passKey + " is the pass key.\n";
    }

    @Override
    public String name() {
        return "passkey";
    }

    @Override
    public Sample generate(int lengthTokens, double depth, SplittableRandom rng) {
        checkDepth(depth);
        int passKey = rng.nextInt(1, MAX_KEY + 1);
        String k = Integer.toString(passKey);
        List<PromptAssembler.NeedleSpec> needle = List.of(new PromptAssembler.NeedleSpec(needleText(passKey), k, k, depth, true));
        return PromptAssembler.assemble(name(), tokenizer, haystack, lengthTokens, INTRO, needle, QUESTION, k, k, rng);
    }

    static void checkDepth(double depth) {
        if (!(depth >= 0 && depth <= 1)) throw new IllegalArgumentException("needle depth must be between 0 and 1, got " + depth);
    }
}
