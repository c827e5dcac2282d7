package ai.longrwkv.core.backend;

import ai.longrwkv.core.tensor.DType;

import java.util.Arrays;

/**
 * A tensor owned by a {@link Backend} (host memory for the CPU backend, device memory for a GPU backend), of one
 * {@link DType} (float32 unless made otherwise). Row-major; only the backend that made it may read or write it. Close
 * it to free the memory early; the backend's live/peak byte counters follow explicit closes. A view
 * ({@link Backend#rows}) shares its parent's memory: closing a view frees nothing.
 */
public interface Tensor extends AutoCloseable {
    int[] shape();

    long size();

    default DType dtype() { return DType.F32; }

    /** Bytes of its elements. */
    default long bytes() { return size() * dtype().bytes(); }

    default int dim(int i) {
        int[] s = shape();
        return s[i < 0 ? s.length + i : i];
    }

    /** Number of rows when the tensor is seen as a matrix [size / lastDim, lastDim]. */
    default int rows() {
        return (int) (size() / dim(-1));
    }

    default int cols() {
        return dim(-1);
    }

    default String shapeString() {
        return Arrays.toString(shape());
    }

    /** Shape and dtype for messages: [1024, 768] bf16. */
    default String describe() {
        return shapeString() + " " + dtype().label();
    }

    @Override
    void close();
}
