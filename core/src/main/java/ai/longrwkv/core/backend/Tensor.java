package ai.longrwkv.core.backend;

import java.util.Arrays;

/**
 * A float32 tensor owned by a {@link Backend} (host memory for the CPU backend, device memory for a GPU backend).
 * Row-major; only the backend that made it may read or write it. Close it to free the memory early; the backend's
 * live/peak byte counters follow explicit closes.
 */
public interface Tensor extends AutoCloseable {
    int[] shape();

    long size();

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

    @Override
    void close();
}
