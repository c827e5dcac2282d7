package ai.longrwkv.core.io.pth;

import ai.longrwkv.core.io.ModelFormatException;
import ai.longrwkv.core.io.pth.StateDictUnpickler.Dict;
import ai.longrwkv.core.io.pth.StateDictUnpickler.StorageRef;
import ai.longrwkv.core.io.pth.StateDictUnpickler.TensorRef;
import ai.longrwkv.core.model.ModelWeights;
import ai.longrwkv.core.tensor.HostTensor;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.AccessDeniedException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Arrays;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.zip.CRC32;

/**
 * Reads PyTorch checkpoints in the zip format torch.save has written since 1.6 (shared/docs/formats.md, ".pth"):
 * {@code <name>/data.pkl} is a pickled dict of tensors, each rebuilt by {@code torch._utils._rebuild_tensor_v2} as a
 * strided view (offset, sizes, strides) of a storage whose raw little-endian values are the record
 * {@code <name>/data/<key>}. bf16, fp16 and fp32 tensors are read, as float32.
 *
 * <p>Only the zip directory and the pickle are read up front, so shapes and dtypes of a 15 GB checkpoint are known in
 * well under a second; each tensor's values are read from a memory map when its entry is loaded. A leading
 * {@code _forward_module.} (Lightning/DeepSpeed exports) is stripped from keys. The pickle is interpreted by
 * {@link StateDictUnpickler}, which refuses anything but the few names a state dict uses: nothing in a file is run.
 */
public final class PthReader {
    /** Key prefix that Lightning / DeepSpeed exports put in front of every parameter name. */
    public static final String FORWARD_MODULE_PREFIX = "_forward_module.";
    /** Memory maps are made in pieces of this size (a single map cannot exceed 2 GB). */
    static final long DEFAULT_PIECE_BYTES = 1L << 30;
    /** A 7B state dict pickles to about 60 KB; far more than this is a corrupt or hostile file. */
    private static final long MAX_PICKLE_BYTES = 64L << 20;
    private static final int MAX_ARRAY = Integer.MAX_VALUE - 8;

    private PthReader() {}

    /**
     * The checkpoint as lazy model weights: shapes and stored dtypes now, float32 values when an entry is loaded.
     * The implied ln_x GroupNorm eps is unknown (NaN): official x052 checkpoints use 64e-5.
     */
    public static ModelWeights read(Path file) {
        return read(file, DEFAULT_PIECE_BYTES);
    }

    /** Every tensor of the checkpoint, loaded as float32, in the pickle's order. */
    public static LinkedHashMap<String, HostTensor> readTensors(Path file) {
        LinkedHashMap<String, HostTensor> out = new LinkedHashMap<>();
        read(file).entries().forEach((k, e) -> out.put(k, e.load()));
        return out;
    }

    /** As {@link #read(Path)}, with a chosen memory-map piece size (tests use tiny pieces to exercise piece borders). */
    static ModelWeights read(Path file, long pieceBytes) {
        String name = file.toString();
        if (Files.isDirectory(file)) throw new ModelFormatException(name + ": is a directory, expected a .pth checkpoint");
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
            return read(file, name, ch, pieceBytes);
        } catch (NoSuchFileException e) {
            throw new ModelFormatException(name + ": file not found", e);
        } catch (AccessDeniedException e) {
            throw new ModelFormatException(name + ": cannot read the file (access denied)", e);
        } catch (IOException e) {
            throw new ModelFormatException(name + ": cannot read the file: " + e.getMessage(), e);
        }
    }

    private static ModelWeights read(Path file, String name, FileChannel ch, long pieceBytes) throws IOException {
        long size = ch.size();
        if (size == 0) throw new ModelFormatException(name + ": file is empty (0 bytes), expected a .pth checkpoint");
        ByteBuffer head = ZipDirectory.readAt(ch, 0, (int) Math.min(size, 4));
        if (head.remaining() < 4 || head.getInt(0) != 0x04034b50) {
            if ((head.get(0) & 0xff) == 0x80) {
                throw new ModelFormatException(name + ": this is a legacy (pre-1.6) torch.save file, a bare pickle; only the zip "
                        + "format is supported. Re-save it with a current PyTorch: torch.save(torch.load(path), path)");
            }
            throw new ModelFormatException(name + ": not a PyTorch zip checkpoint (does not start with the zip signature 50 4b 03 04)");
        }
        ZipDirectory zip = ZipDirectory.read(ch, name);
        String prefix = archivePrefix(zip);

        ZipDirectory.Record byteOrder = zip.find(prefix + "byteorder");
        if (byteOrder != null) {
            String order = new String(recordBytes(zip, ch, byteOrder, 64), StandardCharsets.US_ASCII).trim();
            if (!order.equals("little")) {
                throw new ModelFormatException(name + ": " + byteOrder.name() + " says '" + StateDictUnpickler.printable(order) + "'; only little-endian checkpoints are supported");
            }
        }
        ZipDirectory.Record pickle = zip.find(prefix + "data.pkl");
        if (pickle == null) {
            throw new ModelFormatException(name + ": no '" + prefix + "data.pkl' record; this zip is not a torch.save checkpoint"
                    + (zip.find(prefix + "constants.pkl") != null ? " (it looks like a TorchScript archive from torch.jit.save)" : ""));
        }
        Object root = StateDictUnpickler.load(recordBytes(zip, ch, pickle, MAX_PICKLE_BYTES), name + ": " + pickle.name());
        if (!(root instanceof Dict dict)) {
            throw new ModelFormatException(name + ": the checkpoint holds " + StateDictUnpickler.describe(root)
                    + ", expected a dict of tensors (a state dict)");
        }

        Map<String, MappedStorage> storages = new HashMap<>();
        LinkedHashMap<String, Entry> entries = new LinkedHashMap<>();
        for (Map.Entry<Object, Object> e : dict.items.entrySet()) {
            if (!(e.getKey() instanceof String rawKey)) {
                throw new ModelFormatException(name + ": state dict key " + StateDictUnpickler.describe(e.getKey()) + " is not a string");
            }
            if (!(e.getValue() instanceof TensorRef t)) {
                throw new ModelFormatException(name + ": '" + StateDictUnpickler.printable(rawKey) + "' holds " + StateDictUnpickler.describe(e.getValue())
                        + ", not a tensor; only flat state dicts of tensors are supported (for a training checkpoint, save "
                        + "its model state_dict instead)");
            }
            String key = rawKey.startsWith(FORWARD_MODULE_PREFIX) ? rawKey.substring(FORWARD_MODULE_PREFIX.length()) : rawKey;
            StorageRef s = t.storage();
            MappedStorage storage = storages.get(s.key());
            if (storage == null) {
                storage = openStorage(file, zip, ch, prefix, s, StateDictUnpickler.printable(rawKey), pieceBytes);
                storages.put(s.key(), storage);
            }
            Entry entry = new Entry(key, storage, t.storageOffset(), checkView(name, StateDictUnpickler.printable(rawKey), t), t.stride());
            if (entries.put(key, entry) != null) {
                throw new ModelFormatException(name + ": key '" + StateDictUnpickler.printable(key) + "' occurs twice (once with the '" + FORWARD_MODULE_PREFIX
                        + "' prefix and once without?)");
            }
        }
        return ModelWeights.lazy(entries, name, Double.NaN);
    }

    /** torch names every record "<archive name>/..."; the archive name is what the first record starts with. */
    private static String archivePrefix(ZipDirectory zip) {
        if (zip.records().isEmpty()) throw new ModelFormatException(zip.fileName() + ": the zip archive is empty");
        String first = zip.records().keySet().iterator().next();
        int slash = first.indexOf('/');
        String prefix = slash < 0 ? "" : first.substring(0, slash + 1);
        if (!StateDictUnpickler.printable(prefix).equals(prefix)) {
            // record names go into error messages; refuse rather than print a file's control characters
            throw new ModelFormatException(zip.fileName() + ": the archive name '" + StateDictUnpickler.printable(prefix)
                    + "' contains control characters; not a torch.save checkpoint");
        }
        return prefix;
    }

    private static byte[] recordBytes(ZipDirectory zip, FileChannel ch, ZipDirectory.Record r, long maxBytes) throws IOException {
        if (r.size() > maxBytes) {
            throw new ModelFormatException(zip.fileName() + ": " + r.name() + " is " + r.size() + " bytes, more than the "
                    + maxBytes + " expected at most; corrupt file?");
        }
        long offset = zip.dataOffset(r);
        ByteBuffer buf = ZipDirectory.readAt(ch, offset, (int) r.size());
        byte[] bytes = new byte[buf.remaining()];
        buf.get(bytes);
        CRC32 crc = new CRC32();
        crc.update(bytes);
        if (r.crc32() != 0 && (int) crc.getValue() != r.crc32()) {
            throw new ModelFormatException(String.format("%s: %s: CRC-32 is %08x but the zip directory records %08x; the file is damaged",
                    zip.fileName(), r.name(), (int) crc.getValue(), r.crc32()));
        }
        return bytes;
    }

    private static MappedStorage openStorage(Path file, ZipDirectory zip, FileChannel ch, String prefix, StorageRef s,
                                             String tensorKey, long pieceBytes) throws IOException {
        String name = zip.fileName();
        String recordName = prefix + "data/" + s.key();
        String shownRecord = StateDictUnpickler.printable(recordName);
        String shownStorage = StateDictUnpickler.printable(s.key());
        ZipDirectory.Record r = zip.find(recordName);
        if (r == null) {
            throw new ModelFormatException(name + ": tensor '" + tensorKey + "' uses storage '" + shownStorage + "' but the archive has no record '"
                    + shownRecord + "'; truncated or corrupt checkpoint");
        }
        long offset = zip.dataOffset(r);
        if (s.numel() < 0 || s.numel() > r.size() / s.type().bytes) {
            throw new ModelFormatException(name + ": tensor '" + tensorKey + "': storage '" + shownStorage + "' declares " + s.numel() + " "
                    + s.type().safetensorsName + " values (" + (s.numel() < 0 ? "negative" : s.numel() + " x " + s.type().bytes + " bytes")
                    + ") but its record " + shownRecord + " holds only " + r.size() + " bytes");
        }
        return new MappedStorage(file, name, zip.fileSize(), shownRecord, offset, s.numel() * s.type().bytes, s.type(),
                r.crc32(), pieceBytes);
    }

    /**
     * Checks that the view fits a Java array and lies inside its storage, without overflowing on hostile numbers;
     * returns the shape as ints.
     */
    private static int[] checkView(String name, String key, TensorRef t) {
        String where = name + ": tensor '" + key + "'";
        long[] size = t.size();
        long[] stride = t.stride();
        int[] shape = new int[size.length];
        long numel = 1;
        for (int d = 0; d < size.length; d++) {
            if (size[d] < 0 || size[d] > MAX_ARRAY) {
                throw new ModelFormatException(where + ": invalid shape " + Arrays.toString(size));
            }
            if (stride[d] < 0) throw new ModelFormatException(where + ": negative stride in " + Arrays.toString(stride));
            shape[d] = (int) size[d];
            numel *= size[d];
            if (numel > MAX_ARRAY) {
                throw new ModelFormatException(where + ": shape " + Arrays.toString(size) + " holds more than " + MAX_ARRAY
                        + " values, more than one Java array can hold");
            }
        }
        if (t.storageOffset() < 0) throw new ModelFormatException(where + ": negative storage offset " + t.storageOffset());
        if (numel == 0) return shape;
        long last = t.storageOffset();
        try {
            for (int d = 0; d < size.length; d++) last = Math.addExact(last, Math.multiplyExact(size[d] - 1, stride[d]));
        } catch (ArithmeticException e) {
            last = Long.MAX_VALUE;
        }
        long storageSize = t.storage().numel();
        if (last >= storageSize) {
            throw new ModelFormatException(where + ": view (offset " + t.storageOffset() + ", shape " + Arrays.toString(size)
                    + ", stride " + Arrays.toString(stride) + ") reaches element " + (last == Long.MAX_VALUE ? "beyond 2^63" : last)
                    + " of storage '" + StateDictUnpickler.printable(t.storage().key()) + "', which has only " + storageSize);
        }
        return shape;
    }

    /** A tensor of the checkpoint: shape and dtype known, values read from the file on {@link #load()}. */
    static final class Entry implements ModelWeights.Entry {
        private final String key;
        private final MappedStorage storage;
        private final long storageOffset;
        private final int[] shape;
        private final long[] stride;

        Entry(String key, MappedStorage storage, long storageOffset, int[] shape, long[] stride) {
            this.key = key;
            this.storage = storage;
            this.storageOffset = storageOffset;
            this.shape = shape;
            this.stride = stride;
        }

        @Override public int[] shape() { return shape.clone(); }

        @Override public String dtype() { return storage.type().safetensorsName; }

        /** True if the stored values are a plain row-major block (torch.save of a non-view tensor). */
        boolean contiguous() { return MappedStorage.isRowMajor(shape, stride); }

        @Override
        public HostTensor load() {
            int count = (int) HostTensor.numel(shape);
            float[] out = new float[count];
            storage.gather(key, storageOffset, shape, stride, 0, out, count);
            return new HostTensor(shape, out);
        }

        /** Reads the file a buffer at a time: the tensor is never whole in Java memory. */
        @Override
        public void forEachBlock(float[] buffer, ModelWeights.BlockSink sink) {
            long count = HostTensor.numel(shape);
            if (buffer.length == 0 && count > 0) throw new IllegalArgumentException("empty buffer");
            for (long first = 0; first < count; first += buffer.length) {
                int n = (int) Math.min(buffer.length, count - first);
                storage.gather(key, storageOffset, shape, stride, first, buffer, n);
                sink.accept(first, buffer, n);
            }
        }

        @Override public String toString() { return key + " " + Arrays.toString(shape) + " " + dtype(); }
    }
}
