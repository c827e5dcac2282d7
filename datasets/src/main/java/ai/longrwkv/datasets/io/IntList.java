package ai.longrwkv.datasets.io;

import java.util.Arrays;

/** A growable int array (token ids, lengths) without boxing. */
public final class IntList {
    private int[] data;
    private int size;

    public IntList() {
        this(16);
    }

    public IntList(int capacity) {
        data = new int[Math.max(1, capacity)];
    }

    public void add(int v) {
        if (size == data.length) grow(size + 1);
        data[size++] = v;
    }

    public void addAll(int[] values, int from, int to) {
        int n = to - from;
        if (size + n > data.length) grow(size + n);
        System.arraycopy(values, from, data, size, n);
        size += n;
    }

    public void addAll(int[] values) {
        addAll(values, 0, values.length);
    }

    public int get(int i) {
        if (i >= size) throw new IndexOutOfBoundsException(i + " of " + size);
        return data[i];
    }

    public void set(int i, int v) {
        if (i >= size) throw new IndexOutOfBoundsException(i + " of " + size);
        data[i] = v;
    }

    public int size() {
        return size;
    }

    public void clear() {
        size = 0;
    }

    /** The backing array; valid up to size(). */
    public int[] array() {
        return data;
    }

    public int[] toArray() {
        return Arrays.copyOf(data, size);
    }

    private void grow(int min) {
        long n = Math.max(min, (long) data.length * 2);
        if (n > Integer.MAX_VALUE - 8) n = Integer.MAX_VALUE - 8;
        if (n < min) throw new IllegalStateException("more than " + (Integer.MAX_VALUE - 8) + " values in one list");
        data = Arrays.copyOf(data, (int) n);
    }
}
