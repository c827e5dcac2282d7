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

    /**
     * Needle wordings of {@code --vary} samples ({K} is the key); the first is the Landmark needle the eval uses. The
     * question stays the eval's, so a model trained on these still answers the standard prompt, but it cannot lean on
     * one template (the key's position in the needle, how often it is said).
     */
    static final String[] NEEDLE_VARIANTS = {
        "\nThe pass key is {K}. Remember it. {K} is the pass key.\n",
        "\nThe pass key is {K}.\n",
        "\nRemember this: the pass key is {K}.\n",
        "\n{K} is the pass key. The pass key is {K}. Remember {K}.\n",
        "\nHere is the pass key: {K}. Keep it in mind.\n",
    };

    private final Tokenizer tokenizer;
    private final Haystack haystack;
    private final boolean varied;

    public PasskeyTask(Tokenizer tokenizer, Haystack haystack) {
        this(tokenizer, haystack, false);
    }

    /**
     * @param varied each sample draws its needle wording from {@link #NEEDLE_VARIANTS} and its key's number of digits
     *               (1..5) uniformly, then the key (at most {@link #MAX_KEY}); false: the Landmark needle, keys uniform in
     *               1..50000 (so mostly 5 digits), as the eval
     */
    public PasskeyTask(Tokenizer tokenizer, Haystack haystack, boolean varied) {
        this.tokenizer = tokenizer;
        this.haystack = haystack;
        this.varied = varied;
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
        int passKey;
        String text;
        if (varied) {
            int digits = rng.nextInt(1, 6);
            int low = digits == 1 ? 1 : (int) Math.pow(10, digits - 1), high = Math.min(MAX_KEY, (int) Math.pow(10, digits) - 1);
            passKey = rng.nextInt(low, high + 1);
            text = NEEDLE_VARIANTS[rng.nextInt(NEEDLE_VARIANTS.length)].replace("{K}", Integer.toString(passKey));
        } else {
            passKey = rng.nextInt(1, MAX_KEY + 1);
            text = needleText(passKey);
        }
        String k = Integer.toString(passKey);
        List<PromptAssembler.NeedleSpec> needle = List.of(new PromptAssembler.NeedleSpec(text, k, k, depth, true));
        return PromptAssembler.assemble(name(), tokenizer, haystack, lengthTokens, INTRO, needle, QUESTION, k, k, rng);
    }

    static void checkDepth(double depth) {
        if (!(depth >= 0 && depth <= 1)) throw new IllegalArgumentException("needle depth must be between 0 and 1, got " + depth);
    }
}
