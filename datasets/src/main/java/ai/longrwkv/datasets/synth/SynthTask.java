package ai.longrwkv.datasets.synth;

import java.util.SplittableRandom;

/**
 * A synthetic long-context retrieval task. Implementations: {@link PasskeyTask}, {@link NeedleTask}.
 * Given the same arguments (and an rng in the same state) generate returns the same sample.
 */
public interface SynthTask {
    /** passkey, niah or multikey. */
    String name();

    /**
     * A sample of exactly lengthTokens tokens, the queried needle at `depth` (0..1) of the filler, moved back to the
     * nearest sentence start. An IllegalArgumentException if the length cannot hold the fixed parts.
     */
    Sample generate(int lengthTokens, double depth, SplittableRandom rng);
}
