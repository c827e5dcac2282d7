package ai.longrwkv.datasets.binidx;

import java.nio.charset.StandardCharsets;
import java.nio.file.Path;

/**
 * File layouts and names of a dataset PREFIX (all little-endian).
 *
 * <pre>
 * PREFIX.idx   Megatron / RWKV-LM index:
 *              magic "MMIDIDX\0\0" (9 bytes), u64 version = 1, u8 dtype code, u64 count, u64 doc_count,
 *              int32 sizes[count] (tokens per item), int64 pointers[count] (byte offset of each item in .bin),
 *              int64 doc_idx[doc_count]. Items are documents here, so doc_idx = 0, 1, ..., count.
 * PREFIX.bin   the tokens of all items back to back, dtype from the index (uint16 for a 65536 vocab).
 * PREFIX.mask  loss mask sidecar (ours): magic "LRWKVMSK" (8 bytes), u64 version = 1, u64 token count,
 *              then one byte per token of .bin, in the same order: 1 = the loss on predicting this token counts,
 *              0 = it does not. Item i's flags start at token pointers[i] / dtype bytes.
 * PREFIX.meta.json   what made the dataset (kind, tokenizer, options, counts); optional for plain binidx.
 * PREFIX.segments    packed datasets only, see PackedDataset.
 * </pre>
 */
public final class BinIdxFormat {
    private BinIdxFormat() { }

    public static final byte[] IDX_MAGIC = {'M', 'M', 'I', 'D', 'I', 'D', 'X', 0, 0};
    public static final long IDX_VERSION = 1;
    /** magic 9 + version 8 + dtype 1 + count 8 + doc_count 8. */
    public static final int IDX_HEADER_BYTES = 34;

    public static final byte[] MASK_MAGIC = "LRWKVMSK".getBytes(StandardCharsets.US_ASCII);
    public static final long MASK_VERSION = 1;
    /** magic 8 + version 8 + token count 8. */
    public static final int MASK_HEADER_BYTES = 24;

    public static Path bin(Path prefix) {
        return sibling(prefix, ".bin");
    }

    public static Path idx(Path prefix) {
        return sibling(prefix, ".idx");
    }

    public static Path mask(Path prefix) {
        return sibling(prefix, ".mask");
    }

    public static Path meta(Path prefix) {
        return sibling(prefix, ".meta.json");
    }

    public static Path segments(Path prefix) {
        return sibling(prefix, ".segments");
    }

    /** PREFIX + suffix. A prefix given with .bin or .idx (a common slip) has that extension dropped first. */
    public static Path sibling(Path prefix, String suffix) {
        return Path.of(stripExtension(prefix.toString()) + suffix);
    }

    public static String stripExtension(String prefix) {
        for (String ext : new String[]{".bin", ".idx", ".mask", ".meta.json", ".segments"}) {
            if (prefix.endsWith(ext)) return prefix.substring(0, prefix.length() - ext.length());
        }
        return prefix;
    }
}
