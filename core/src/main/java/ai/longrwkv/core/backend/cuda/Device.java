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
