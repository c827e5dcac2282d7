package ai.longrwkv.core.backend.cuda;

import ai.longrwkv.core.tensor.DType;
import org.bytedeco.javacpp.Pointer;

import java.util.Map;

/**
 * What the CUDA backend asks of a GPU, in the driver's own terms: raw device memory, copies, memset, kernels from the
 * project's {@code .cu} sources, launches with a cuLaunchKernel argument array, synchronisation, and GEMM with
 * cuBLAS's column-major semantics. Two implementations: {@link DriverDevice} (the NVIDIA driver, NVRTC and cuBLAS)
 * and {@link EmulatedDevice} (the same kernel sources compiled with g++ through an emulation header and run on the
 * CPU, GEMM by OpenBLAS), so that everything above this interface is the same code on a GPU and in CI.
 *
 * <p>Device pointers are plain {@code long}s. Every method may be called from any Java thread.
 */
interface Device extends AutoCloseable {
    /** One line: the device, its architecture and memory, the driver or emulation mode. */
    String description();

    /** Total device memory in bytes. */
    long totalMemory();

    /**
     * Bytes that allocation sizes are rounded up to, so that nearby sizes share pool entries: 256 on a GPU; 2 on the
     * emulated device (the size of a bf16 element), where every allocation ends exactly where its tensor ends so that
     * a write one element past the end hits the guard zone.
     */
    default long allocationGranularity() { return 256; }

    /** Raw allocation; 0 when the device is out of memory (the caller may free cached memory and retry). */
    long malloc(long bytes);

    /** Returns memory from {@link #malloc}; throws when the device reports an error. */
    void free(long ptr);

    void copyHtoD(long dst, Pointer src, long bytes);

    void copyDtoH(Pointer dst, long src, long bytes);

    void copyDtoD(long dst, long src, long bytes);

    /** Sets count 32-bit words at dst to value. */
    void memsetD32(long dst, int value, long count);

    /** Sets count 16-bit words at dst to value (dst 2-byte aligned): zeros for bf16 tensors of any length. */
    void memsetD16(long dst, short value, long count);

    /** Waits for all queued work; surfaces the errors of earlier asynchronous launches, naming {@code after}. */
    void synchronize(String after);

    /** The kernel {@code name} of module {@code module} (one {@code .cu} source), loading the module if needed. */
    DeviceFunction function(String module, String name);

    /**
     * Launches grid x block threads; {@code params} is what cuLaunchKernel takes: the host address of an array whose
     * element i is the host address of a cell holding argument i.
     */
    void launch(DeviceFunction f, int grid, int block, int sharedBytes, Pointer params);

    /**
     * C = alpha op(A) op(B) + beta C, column-major, exactly as cublasSgemm documents it (m, n, k, leading dimensions,
     * transposes). Returns false when the library could not allocate its workspace (the caller frees cached memory
     * and retries); throws on any other error.
     */
    boolean sgemm(boolean transA, boolean transB, int m, int n, int k, float alpha, long a, int lda, long b, int ldb,
                  float beta, long c, int ldc);

    /**
     * C = alpha op(A) op(B) + beta C, column-major, as cublasGemmEx documents it: A of type {@code aType} and B of type
     * {@code bType} (cuBLAS takes them only of one type: a pair that differs is CUBLAS_STATUS_NOT_SUPPORTED), C fp32
     * (CUDA_R_32F), compute type CUBLAS_COMPUTE_32F: the products of bf16 inputs are exact in fp32 and are summed in
     * fp32 (on tensor cores on a GPU). Leading dimensions and transposes as in {@link #sgemm}, in elements of each
     * operand's own type. Returns false when the library could not allocate its workspace; throws on any other error.
     */
    boolean gemmEx(boolean transA, boolean transB, int m, int n, int k, float alpha, long a, DType aType, int lda,
                   long b, DType bType, int ldb, float beta, long c, int ldc);

    // ---------------------------------------------------------------- NCCL
    /**
     * ncclGetUniqueId: the opaque {@link #NCCL_UNIQUE_ID_BYTES} bytes that name a new group. Made once (by rank 0) and
     * handed to every rank, which joins with {@link #ncclCommInitRank}. An id of one device kind (driver, emulated)
     * is refused by the other.
     */
    byte[] ncclUniqueId();

    /**
     * ncclCommInitRank on this device: joins group {@code id} as {@code rank} of {@code nranks}. Blocks until every
     * rank has joined; after {@code timeoutMillis} throws {@link ai.longrwkv.core.dist.CollectiveException} naming
     * this rank (and, where the device can tell, which ranks joined). On a GPU a missing libnccl.so.2 is an
     * {@link IllegalArgumentException} with one line saying how to install it.
     */
    NcclComm ncclCommInitRank(byte[] id, int rank, int nranks, long timeoutMillis);

    /** ncclUniqueId's size (NCCL_UNIQUE_ID_BYTES in nccl.h). */
    int NCCL_UNIQUE_ID_BYTES = 128;

    /** The element types the collectives are issued with: ncclFloat32, ncclBfloat16, ncclFloat64. */
    enum NcclType {
        F32(4, "fp32"), BF16(2, "bf16"), F64(8, "fp64");

        final int bytes;
        final String label;

        NcclType(int bytes, String label) {
            this.bytes = bytes;
            this.label = label;
        }

        static NcclType of(DType t) { return t == DType.F32 ? F32 : BF16; }
    }

    /**
     * One rank's NCCL communicator, in NCCL's own terms: device pointers, element counts and types, ncclSum, root
     * ranks. Each call is issued in stream order after all earlier work of the device (and before all later work),
     * exactly as a kernel launch is: a later download or synchronize sees its result. In-place use is NCCL's: send
     * == recv for allReduce, reduce, broadcast; send == recv + rank * sendCount (elements) for allGather; send + rank
     * * recvCount == recv for reduceScatter. Every rank must issue the same calls in the same order with the same
     * counts, types and roots; one thread per rank. A call that cannot complete throws
     * {@link ai.longrwkv.core.dist.CollectiveException}.
     */
    interface NcclComm extends AutoCloseable {
        int rank();

        int size();

        /** ncclAllReduce(send, recv, count, type, ncclSum): recv = sum over ranks of send, on every rank. */
        void allReduce(long send, long recv, long count, NcclType type);

        /** ncclReduce(..., ncclSum, root): recv at root = sum over ranks of send; recv is not touched elsewhere. */
        void reduce(long send, long recv, long count, NcclType type, int root);

        /** ncclBroadcast(send, recv, count, type, root): recv = root's send on every rank (send is read only at root). */
        void broadcast(long send, long recv, long count, NcclType type, int root);

        /** ncclAllGather(send, recv, sendCount, type): recv (nranks x sendCount) = every rank's send, in rank order. */
        void allGather(long send, long recv, long sendCount, NcclType type);

        /** ncclReduceScatter(send, recv, recvCount, type, ncclSum): recv = segment {@code rank} of the sum of send. */
        void reduceScatter(long send, long recv, long recvCount, NcclType type);

        /**
         * Whether {@link #allReduceQueued} and {@link #reduceQueued} run on a stream of their own (the driver), so that
         * they overlap the compute queued after them; false: the communicator defers them until awaited (the emulated
         * device, where nothing runs asynchronously).
         */
        default boolean queues() { return false; }

        /** As {@link #allReduce}, on the communication stream once the compute queued so far is done; its ticket. */
        default ai.longrwkv.core.dist.Communicator.Queued allReduceQueued(long send, long recv, long count, NcclType type) {
            throw new UnsupportedOperationException("no communication stream");
        }

        /** As {@link #reduce}, on the communication stream (see {@link #allReduceQueued}). */
        default ai.longrwkv.core.dist.Communicator.Queued reduceQueued(long send, long recv, long count, NcclType type, int root) {
            throw new UnsupportedOperationException("no communication stream");
        }

        /** The compute stream waits for the queued call {@code q} (and those before it); the host does not. */
        default void await(ai.longrwkv.core.dist.Communicator.Queued q) { }

        /** The compute stream waits for every queued call. */
        default void awaitAll() { }

        /** ncclCommGetAsyncError: null when the communicator is healthy, else what went wrong. */
        String asyncError();

        /**
         * ncclCommAbort: the communicator is unusable from now on, and the other ranks' pending and later calls fail
         * instead of hanging (on a GPU: after their watchdog's timeout, NCCL itself does not tell them why).
         */
        void abort(String reason);

        /** ncclCommDestroy (after the queued work); idempotent. */
        @Override
        void close();
    }

    /** How each loaded module was obtained (prebuilt, cache, nvrtc, g++), for the backend's description. */
    Map<String, String> moduleOrigins();

    @Override
    void close();

    /**
     * A kernel: its module and name, the device's handle, the byte size of each parameter (null where the driver
     * cannot tell), and its block-size limit.
     */
    record DeviceFunction(String module, String name, Object handle, int[] paramSizes, int maxThreadsPerBlock) { }
}
