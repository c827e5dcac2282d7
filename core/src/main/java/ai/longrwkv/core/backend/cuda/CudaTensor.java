package ai.longrwkv.core.backend.cuda;

import ai.longrwkv.core.backend.Tensor;
import ai.longrwkv.core.tensor.HostTensor;

/** A float32 tensor in device memory owned by a {@link CudaBackend}; close() returns the memory to its pool. */
final class CudaTensor implements Tensor {
    private final CudaBackend owner;
    private final int[] shape;
    private final long size;
    private long ptr;
    /** The tensor a view points into (null for an owner); a view owns nothing. */
    private final CudaTensor parent;
    private final long offsetBytes;

    CudaTensor(CudaBackend owner, int[] shape) {
        this.owner = owner;
        this.shape = shape.clone();
        this.size = HostTensor.numel(shape);
        this.ptr = owner.memory.alloc(Math.max(size, 1) * 4L);
        this.parent = null;
        this.offsetBytes = 0;
        owner.track(size * 4L);
    }

    private CudaTensor(CudaTensor parent, long offsetElements, int[] shape) {
        this.owner = parent.owner;
        this.shape = shape.clone();
        this.size = HostTensor.numel(shape);
        this.parent = parent;
        this.offsetBytes = offsetElements * 4L;
        this.ptr = 0;
    }

    CudaTensor view(long offsetElements, int[] viewShape) {
        return new CudaTensor(this, offsetElements, viewShape);
    }

    @Override public int[] shape() { return shape.clone(); }
    @Override public long size() { return size; }

    long ptr() {
        if (parent != null) return parent.ptr() + offsetBytes;
        if (ptr == 0) throw new IllegalStateException("tensor " + shapeString() + " used after close()");
        return ptr;
    }

    /** Device address of element i. */
    long ptr(long element) { return ptr() + element * 4L; }

    @Override
    public void close() {
        if (parent == null && ptr != 0) {
            owner.memory.free(ptr, Math.max(size, 1) * 4L);
            ptr = 0;
            owner.track(-size * 4L);
        }
    }

    @Override
    public String toString() { return "CudaTensor" + shapeString(); }
}
