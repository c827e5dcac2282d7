package ai.longrwkv.core.tensor;

import java.util.Arrays;

/**
 * A float32 tensor in ordinary Java memory, row-major (C order), with a PyTorch-style shape.
 * This is how weights and results travel between files, the command line and a {@link ai.longrwkv.core.backend.Backend};
 * the math itself runs on backend tensors.
 */
public final class HostTensor {
    private final int[] shape;
    private final float[] data;

    public HostTensor(int[] shape, float[] data) {
        long n = numel(shape);
        if (n != data.length) {
            throw new IllegalArgumentException("shape " + Arrays.toString(shape) + " holds " + n + " values, data has " + data.length);
        }
        this.shape = shape.clone();
        this.data = data;
    }

    public static HostTensor zeros(int... shape) {
        long n = numel(shape);
        if (n > Integer.MAX_VALUE - 8) {
            throw new IllegalArgumentException("tensor of shape " + Arrays.toString(shape) + " is too large for one Java array");
        }
        return new HostTensor(shape, new float[(int) n]);
    }

    public static long numel(int[] shape) {
        long n = 1;
        for (int d : shape) {
            if (d < 0) throw new IllegalArgumentException("negative dimension in shape " + Arrays.toString(shape));
            n *= d;
        }
        return n;
    }

    public int[] shape() { return shape.clone(); }
    public int dim(int i) { return shape[i < 0 ? shape.length + i : i]; }
    public int rank() { return shape.length; }
    public int size() { return data.length; }
    /** The backing array, shared (not a copy). */
    public float[] data() { return data; }

    public HostTensor reshape(int... newShape) {
        return new HostTensor(newShape, data);
    }

    public HostTensor copy() {
        return new HostTensor(shape, data.clone());
    }

    public boolean sameShape(int... other) {
        return Arrays.equals(shape, other);
    }

    public static String shapeString(int[] shape) {
        return Arrays.toString(shape);
    }

    @Override
    public String toString() {
        return "HostTensor" + Arrays.toString(shape);
    }
}
