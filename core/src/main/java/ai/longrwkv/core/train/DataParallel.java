package ai.longrwkv.core.train;

import ai.longrwkv.core.dist.Communicator;

/**
 * How one rank of a data-parallel group trains (several GPUs, several machines): its {@link Communicator} and the
 * ZeRO stage.
 *
 * <ul>
 *   <li>Data: rank r of W takes sequences (step x W + r) x m .. + m - 1 of every step (m = micro-batch x grad-accum),
 *   so W ranks with micro-batch b train exactly the sequences, in the same grouping, of one device with micro-batch
 *   W x b: resumable, and the same run whatever the rank count.</li>
 *   <li>Every rank issues the same collectives in the same order whatever its sequence lengths or how many of its
 *   sequences had no trained target (the infctx trainer deadlocked on ranks with different segment counts): the
 *   ranks agree on a step's number of chunk backwards first and the shorter ones pad ({@link GradientReduction}).</li>
 *   <li>--zero 0: gradients all-reduced, every rank steps every tensor (the same bits on every rank).
 *   --zero 1: each trainable tensor has one owner ({@link ai.longrwkv.core.dist.ZeroShards}, the assignment the memory plan uses); its gradient is reduced to the owner, only the
 *   owner keeps AdamW moments for it and steps it, and then broadcasts the updated tensor (the bf16 working copy in
 *   mixed precision: what the others' forward reads). Ownership by whole tensors, not by slices of a flat buffer: each
 *   tensor's update, its clipping norm term and its checkpoint entry are then computed exactly as on one device, so a
 *   sharded step equals the unsharded one bit for bit.</li>
 *   <li>--zero 2: as 1, and each rank keeps gradients only for the tensors it owns: every chunk's layer gradients are
 *   reduced to their owners as soon as the layer's backward is done ({@link GradientReduction}), so the others need
 *   only a scratch of two layers (and the embedding's and head's). The price: one reduction per chunk instead of one
 *   per step, and the sums associate differently from one device's (equal within fp32 rounding, not bit for bit).</li>
 * </ul>
 */
public record DataParallel(Communicator comm, int zero) {
    public DataParallel {
        if (comm == null) throw new IllegalArgumentException("a data-parallel rank needs a communicator");
        if (zero < 0 || zero > 2) throw new IllegalArgumentException("--zero must be 0, 1 or 2, got " + zero);
    }

    public int rank() { return comm.rank(); }

    public int world() { return comm.size(); }

    /** Whether optimizer state is sharded (ZeRO 1 or 2 on more than one rank). */
    public boolean sharded() { return zero > 0 && comm.size() > 1; }

    /**
     * Whether a trainable is a LoRA adapter or a tuned state rather than a model parameter: no block's backward reports
     * it, so its gradient stays whole on every rank and is reduced once, at the step end (ZeRO 2 included).
     */
    public static boolean reducedAtStepEnd(String key) {
        return key.contains(".lora_") || StateFile.isStateKey(key);
    }
}
