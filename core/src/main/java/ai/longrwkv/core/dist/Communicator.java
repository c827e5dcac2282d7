package ai.longrwkv.core.dist;

import ai.longrwkv.core.backend.Tensor;

/**
 * One rank's handle on a group of ranks that train together (data parallel): the collectives the trainer needs, on
 * tensors of this rank's backend, with NCCL's semantics (ncclAllReduce, ncclReduce, ncclBroadcast, ncclAllGather,
 * ncclReduceScatter with ncclSum). On a GPU they are NCCL itself; on the emulated device an emulation of those
 * documented semantics that sums in rank order (rank 0's values, plus rank 1's, ...), so that results are
 * reproducible bit for bit. Every rank must call the same collectives in the same order with the same sizes.
 *
 * <p>Each call returns when its result is in place (it may be queued on the device, as later kernels are: a download
 * or synchronize sees it). A collective that does not complete within the group's timeout (a rank died, is stuck, or
 * called something else) throws {@link CollectiveException} naming this rank, the call and what to check; so does
 * every call after {@link #abort}.
 */
public interface Communicator extends AutoCloseable {

    /** This rank, 0 .. size-1. */
    int rank();

    /** Number of ranks in the group. */
    int size();

    /** t = the sum of t over all ranks, on every rank (fp32). */
    void allReduceSum(Tensor t);

    /** At {@code root}: t = the sum of t over all ranks; on the other ranks t is unchanged (fp32). */
    void reduceSum(Tensor t, int root);

    /** t = root's t on every rank (fp32 or bf16). */
    void broadcast(Tensor t, int root);

    /** out (size x in.size() values) = every rank's in, in rank order (fp32 or bf16). */
    void allGather(Tensor in, Tensor out);

    /** out = the sum over ranks of segment {@code rank()} of in (in has size x out.size() values; fp32). */
    void reduceScatterSum(Tensor in, Tensor out);

    /** The element-wise sum over ranks of a small host vector, in fp64 (losses, counts, sums of squares). */
    double[] allReduceSum(double[] values);

    /** A queued collective ({@link #allReduceSumQueued}, {@link #reduceSumQueued}), to {@link #await}. */
    interface Queued { }

    /**
     * As {@link #allReduceSum(Tensor)}, queued: it may still run while this rank computes what comes next (on a GPU on
     * a stream of its own, next to the kernels that follow; on the emulated device when it is awaited). Until
     * {@link #await} of it (or of a later queued call) the caller must neither read nor write t. Queued calls run in
     * the order they were made, and before any later call that is not queued. Default: at once.
     */
    default Queued allReduceSumQueued(Tensor t) {
        allReduceSum(t);
        return null;
    }

    /** As {@link #reduceSum(Tensor, int)}, queued (see {@link #allReduceSumQueued}). */
    default Queued reduceSumQueued(Tensor t, int root) {
        reduceSum(t, root);
        return null;
    }

    /**
     * Makes this rank's later work (kernels, copies, downloads) wait for {@code q} and every queued call before it; on
     * a GPU the compute stream waits, not the host. null: nothing to wait for.
     */
    default void await(Queued q) { }

    /** Returns when every rank has reached it. */
    void barrier();

    /**
     * Marks the group broken with {@code reason} (this rank failed): the collectives other ranks are waiting in, and
     * every later one on any rank, fail with a message that names this rank and the reason, instead of hanging.
     */
    void abort(String reason);

    @Override
    void close();
}
