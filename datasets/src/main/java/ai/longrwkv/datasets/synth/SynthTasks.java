package ai.longrwkv.datasets.synth;

import ai.longrwkv.core.tokenizer.Tokenizer;

import java.nio.charset.StandardCharsets;
import java.util.SplittableRandom;

/**
 * Picks a task by name and derives the random stream of each sample, so that `data synth` and the eval produce the
 * same sample for the same (seed, task, length, index) whatever else they generate.
 */
public final class SynthTasks {
    private SynthTasks() { }

    /** Default needle count of multikey (RULER's multi-key tasks use 4 keys, one asked). */
    public static final int DEFAULT_MULTIKEY_NEEDLES = 4;

    /** passkey, niah or multikey (with `needles` needles; ignored by the others). */
    public static SynthTask create(String name, Tokenizer tokenizer, Haystack haystack, int needles) {
        return create(name, tokenizer, haystack, needles, false);
    }

    /** As above; {@code varied}: passkey samples with varied needle wordings and key lengths (see {@link PasskeyTask}). */
    public static SynthTask create(String name, Tokenizer tokenizer, Haystack haystack, int needles, boolean varied) {
        String task = name.strip().toLowerCase(java.util.Locale.ROOT);
        if (varied && !task.equals("passkey")) throw new IllegalArgumentException("--vary is for the passkey task, not " + task);
        return switch (task) {
            case "passkey" -> new PasskeyTask(tokenizer, haystack, varied);
            case "niah" -> new NeedleTask(tokenizer, haystack, 1);
            case "multikey" -> {
                if (needles < 2) throw new IllegalArgumentException("multikey needs at least 2 needles, got " + needles);
                yield new NeedleTask(tokenizer, haystack, needles);
            }
            default -> throw new IllegalArgumentException("unknown synthetic task '" + name + "': expected passkey, niah or multikey");
        };
    }

    /** The random stream of sample `index` of a given length: independent of the other samples. */
    public static SplittableRandom sampleRandom(long seed, String task, int lengthTokens, int index) {
        long h = seed;
        for (byte b : task.getBytes(StandardCharsets.UTF_8)) h = h * 0x100000001b3L + b;
        h = h * 0x9E3779B97F4A7C15L + lengthTokens;
        h = h * 0x9E3779B97F4A7C15L + index;
        return new SplittableRandom(h);
    }

    /**
     * Sample `index` of a given length: the depth is depths[index % depths.length], or uniformly random (the
     * stream's first draw) when depths is null or empty.
     */
    public static Sample sample(SynthTask task, long seed, int lengthTokens, int index, double[] depths) {
        SplittableRandom rng = sampleRandom(seed, task.name(), lengthTokens, index);
        double depth = depths == null || depths.length == 0 ? rng.nextDouble() : depths[index % depths.length];
        return task.generate(lengthTokens, depth, rng);
    }
}
