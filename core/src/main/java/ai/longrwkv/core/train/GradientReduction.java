package ai.longrwkv.core.train;

import ai.longrwkv.core.backend.Backend;
import ai.longrwkv.core.backend.Tensor;
import ai.longrwkv.core.dist.Communicator;
import ai.longrwkv.core.model.Rwkv5Model;

import java.util.ArrayList;
import java.util.List;
import java.util.Set;

/**
 * When and how a data-parallel step's gradients are summed over the ranks, as buckets reduced while the backward
 * continues below them: each bucket's collectives are queued ({@link Communicator#reduceSumQueued}; on a GPU on a
 * stream of their own, next to the kernels of the blocks below) and awaited only where their tensors are written next.
 *
 * <p>A step is a number of <em>rounds</em>, one per chunk backward, the same number on every rank: the largest count
 * of any rank this step ({@link #beginStep} exchanges them), a rank with fewer chunks (shorter sequences, sequences
 * with no trained target) making empty rounds at its end. So every rank issues the same collectives in the same order
 * whatever its data. In a round: after layer l's backward, layer l's trained tensors (a bucket); after the chunk, the
 * embedding, head and outer norms; at the step end, what the blocks do not hold (LoRA adapters, tuned states).
 * <ul>
 *   <li>ZeRO 0 and 1 reduce in the last round only (the gradients are then complete): all-reduce, or reduce to the
 *   tensor's owner;</li>
 *   <li>ZeRO 2 reduces to the owner in every round: a rank's own tensors accumulate in place (its reduce is in place:
 *   its running sum plus the others' chunk gradients), the others' gradients live in scratch tensors zeroed before each
 *   round, so no rank holds the gradients it does not own.</li>
 * </ul>
 */
final class GradientReduction implements Rwkv5Model.GradientHook {
    private final Backend be;
    private final DataParallel dp;
    private final List<Trainable> trainables;
    private final int[] owners;
    /** Per layer, the trainables that are that block's parameters; then those of the model outside the blocks. */
    private final int[][] layerBuckets;
    private final int[] outerBucket;
    /** Trainables that no chunk backward reports (LoRA adapters, tuned states): reduced at the step end. */
    private final int[] stepEndBucket;
    private final Set<Tensor> scratch;
    private int rounds, round, ownRounds;
    /**
     * The newest queued reduction of the even and of the odd blocks' buckets, and of the outer bucket: what must be
     * done before those tensors are written again (the scratch zeroed for the block two below, an owner's accumulator
     * in the next round), while the reduction of the block just finished still runs next to the one being computed.
     */
    private final Communicator.Queued[] blockQueued = new Communicator.Queued[2];
    private Communicator.Queued outerQueued, lastQueued;

    /**
     * @param blockOf the block whose backward completes a parameter's gradient (-1: after the blocks, as the embedding,
     *                ln0 (keyed under block 0, but backpropagated after it), ln_out and the head; null: not a model
     *                parameter, reduced at the step end)
     */
    GradientReduction(Backend be, DataParallel dp, List<Trainable> trainables, int[] owners, int nLayer, Set<Tensor> scratch,
                      java.util.function.Function<String, Integer> blockOf) {
        this.be = be;
        this.dp = dp;
        this.trainables = trainables;
        this.owners = owners;
        this.scratch = scratch;
        List<List<Integer>> layers = new ArrayList<>();
        for (int l = 0; l < nLayer; l++) layers.add(new ArrayList<>());
        List<Integer> outer = new ArrayList<>(), end = new ArrayList<>();
        for (int i = 0; i < trainables.size(); i++) {
            Integer block = blockOf.apply(trainables.get(i).key());
            if (block == null) end.add(i);
            else if (block >= 0) layers.get(block).add(i);
            else outer.add(i);
        }
        layerBuckets = layers.stream().map(b -> b.stream().mapToInt(Integer::intValue).toArray()).toArray(int[][]::new);
        outerBucket = outer.stream().mapToInt(Integer::intValue).toArray();
        stepEndBucket = end.stream().mapToInt(Integer::intValue).toArray();
    }

    /** Before a step's first backward: this rank will make {@code backwards} chunk backwards; agrees on the rounds. */
    void beginStep(int backwards) {
        double[] counts = new double[dp.world()];
        counts[dp.rank()] = backwards;
        counts = dp.comm().allReduceSum(counts);
        rounds = 0;
        for (double c : counts) rounds = Math.max(rounds, (int) c);
        round = 0;
        ownRounds = backwards;
    }

    /** After the step's last backward: the empty rounds of a rank with fewer chunks, then the step-end bucket. */
    void endStep() {
        if (round != ownRounds) {
            throw new IllegalStateException("rank " + dp.rank() + ": " + round + " chunk backwards this step, " + ownRounds + " announced");
        }
        while (round < rounds) {
            beforeBackward();
            for (int l = layerBuckets.length - 1; l >= 0; l--) {
                beforeLayer(l);
                afterLayer(l);
            }
            afterBackward();
        }
        dp.comm().await(lastQueued);   // the optimizer reads every gradient next
        blockQueued[0] = blockQueued[1] = outerQueued = lastQueued = null;
        for (int i : stepEndBucket) reduce(i);
    }

    private boolean reducesThisRound() {
        return dp.zero() == 2 || round == rounds - 1;
    }

    private void reduce(int i) {
        Tensor g = trainables.get(i).grad();
        if (owners == null) dp.comm().allReduceSum(g);
        else dp.comm().reduceSum(g, owners[i]);
    }

    /** The bucket's reductions, queued: they may run while the backward goes on below; returns the last one's ticket. */
    private Communicator.Queued reduceQueued(int[] bucket) {
        Communicator.Queued q = null;
        for (int i : bucket) {
            Tensor g = trainables.get(i).grad();
            q = owners == null ? dp.comm().allReduceSumQueued(g) : dp.comm().reduceSumQueued(g, owners[i]);
        }
        if (q != null) lastQueued = q;
        return q;
    }

    /** ZeRO 2: the scratch gradients of a bucket (other ranks' tensors) start each round at zero. */
    private void zeroScratch(int[] bucket) {
        if (dp.zero() != 2) return;
        for (int i : bucket) {
            Tensor g = trainables.get(i).grad();
            if (scratch.contains(g)) be.fill(g, 0f);
        }
    }

    @Override
    public void beforeBackward() {
        if (round >= rounds) throw new IllegalStateException("rank " + dp.rank() + ": more chunk backwards this step than the " + rounds + " announced");
        dp.comm().await(outerQueued);
        zeroScratch(outerBucket);
    }

    @Override
    public void beforeLayer(int l) {
        dp.comm().await(blockQueued[l % 2]);
        zeroScratch(layerBuckets[l]);
    }

    @Override
    public void afterLayer(int l) {
        if (reducesThisRound()) {
            Communicator.Queued q = reduceQueued(layerBuckets[l]);
            if (q != null) blockQueued[l % 2] = q;
        }
    }

    @Override
    public void afterBackward() {
        if (reducesThisRound()) {
            Communicator.Queued q = reduceQueued(outerBucket);
            if (q != null) outerQueued = q;
        }
        round++;
    }
}
