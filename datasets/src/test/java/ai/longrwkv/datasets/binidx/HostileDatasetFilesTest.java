package ai.longrwkv.datasets.binidx;

import ai.longrwkv.datasets.TestSupport;
import ai.longrwkv.datasets.build.DatasetBuilder;
import ai.longrwkv.datasets.build.InputFormat;
import ai.longrwkv.datasets.pack.BoundaryMode;
import ai.longrwkv.datasets.pack.LengthMix;
import ai.longrwkv.datasets.pack.PackedDataset;
import ai.longrwkv.datasets.pack.Packer;
import ai.longrwkv.datasets.stats.DatasetStats;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Issue 13 items 3 and 7: dataset files that are there but unusable (dangling links, link loops, directories, FIFOs,
 * /dev/zero) are refused, never taken as absent and never read without bound; binidx pointers must agree with the sizes.
 */
class HostileDatasetFilesTest {
    @TempDir
    Path dir;

    private Path build(String name, String... texts) throws IOException {
        List<String> lines = new ArrayList<>();
        for (String t : texts) lines.add("{\"text\": \"" + t + "\"}");
        Path in = TestSupport.writeLines(dir.resolve(name + ".jsonl"), lines);
        Path out = dir.resolve(name);
        new DatasetBuilder(new DatasetBuilder.Options(InputFormat.TEXT, TestSupport.bytes(), "bytes", false, false, 1, null)).build(List.of(in), out);
        return out;
    }

    private Path pack(Path src) {
        Path out = dir.resolve("packed");
        Packer.pack(src, out, new Packer.Options(64, LengthMix.parse(null, 64), BoundaryMode.RESET, 1, false));
        return out;
    }

    private static String refused(Runnable r) {
        IllegalArgumentException e = assertTimeoutPreemptively(Duration.ofSeconds(20), () -> assertThrows(IllegalArgumentException.class, r::run));
        assertFalse(e.getMessage().matches("(?s).*\\b(java|com|sun)\\.[a-z]+\\.[A-Za-z.]*(Exception|Error).*"), e.getMessage());
        return e.getMessage();
    }

    private static void mkfifo(Path p) throws Exception {
        Process proc = new ProcessBuilder("mkfifo", p.toString()).start();
        Assumptions.assumeTrue(proc.waitFor(10, TimeUnit.SECONDS) && proc.exitValue() == 0, "mkfifo not available");
    }

    @Test
    void maskThatIsThereButUnusableIsNotTakenAsAbsent() throws Exception {
        Path p = build("d", "hello", "world");
        Path mask = BinIdxFormat.mask(p);
        Files.delete(mask);
        Files.createSymbolicLink(mask, dir.resolve("gone.mask"));
        assertTrue(refused(() -> BinIdxDataset.open(p).close()).contains("does not exist"));
        Files.delete(mask);
        Files.createSymbolicLink(mask, mask);   // a link to itself: a loop
        assertTrue(refused(() -> BinIdxDataset.open(p).close()).contains("loop"));
        Files.delete(mask);
        Files.createDirectory(mask);
        assertTrue(refused(() -> BinIdxDataset.open(p).close()).contains("is a directory"));
        Files.delete(mask);
        mkfifo(mask);
        assertTrue(refused(() -> BinIdxDataset.open(p).close()).contains("not a regular file"));
        Files.delete(mask);
        try (BinIdxDataset d = BinIdxDataset.open(p)) {
            assertFalse(d.hasMask(), "really absent: every token trained, as documented");
        }
    }

    /** A token the dataset's own tokenizer cannot produce (data for another model, or a corrupted .bin) is named. */
    @Test
    void statsRefusesATokenOutsideTheTokenizersVocabulary() throws Exception {
        Path p = build("v", "hello", "world");
        assertTrue(DatasetStats.report(p, null, 0, 10).contains("token ids:      all within bytes's 0..255"));
        Path bin = BinIdxFormat.bin(p);
        byte[] b = Files.readAllBytes(bin);
        try (BinIdxDataset d = BinIdxDataset.open(p)) { assertEquals(TokenDtype.UINT16, d.dtype(), "the test writes a uint16 id"); }
        b[2 * 7] = (byte) (300 & 0xff);
        b[2 * 7 + 1] = (byte) (300 >> 8);
        Files.write(bin, b);
        String msg = refused(() -> DatasetStats.report(p, null, 0, 10));
        assertTrue(msg.startsWith(bin + ": document 1 has token 300 at position 1, outside the vocabulary of its tokenizer 'bytes'"), msg);
    }

    @Test
    void fifosAndDevZeroAsAnyDatasetFileAreRefusedQuickly() throws Exception {
        Path p = build("d", "hello", "world");
        for (String ext : new String[]{".idx", ".bin", ".meta.json"}) {
            Path f = BinIdxFormat.sibling(p, ext);
            Path saved = Files.move(f, dir.resolve("saved" + ext));
            mkfifo(f);
            String msg = refused(() -> DatasetStats.report(p, null, 0, 10));
            assertTrue(msg.contains(f.toString()) && msg.contains("not a regular file"), msg);
            Files.delete(f);
            if (Files.exists(Path.of("/dev/zero"))) {
                Files.createSymbolicLink(f, Path.of("/dev/zero"));
                assertTrue(refused(() -> DatasetStats.report(p, null, 0, 10)).contains("not a regular file"));
                Files.delete(f);
            }
            Files.move(saved, f);
        }
        Path packed = pack(p);
        Path seg = BinIdxFormat.segments(packed);
        Files.delete(seg);
        mkfifo(seg);
        assertTrue(refused(() -> PackedDataset.open(packed).close()).contains("not a regular file"));
        Files.delete(seg);
        Files.createSymbolicLink(seg, dir.resolve("nothing"));
        assertTrue(refused(() -> PackedDataset.open(packed).close()).contains("does not exist"));
        assertTrue(refused(() -> DatasetStats.report(packed, null, 0, 10)).contains("does not exist"), "stats reads a packed dataset as one");
        Files.delete(seg);
        assertTrue(refused(() -> DatasetStats.report(packed, null, 0, 10)).contains("segments not found"));
    }

    @Test
    void sizesAreBoundedByTheHeaderBeforeAnythingIsRead() throws IOException {
        Path p = build("d", "hello", "world");
        Path packed = pack(p);
        Path seg = BinIdxFormat.segments(packed);
        byte[] b = Files.readAllBytes(seg);
        ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN).putLong(24, Long.MAX_VALUE / 2);   // segment count
        Files.write(seg, b);
        assertTrue(refused(() -> PackedDataset.open(packed).close()).contains("segments"));
        Path idx = BinIdxFormat.idx(p);
        byte[] i = Files.readAllBytes(idx);
        ByteBuffer.wrap(i).order(ByteOrder.LITTLE_ENDIAN).putLong(18, 1L << 40);   // item count
        Files.write(idx, i);
        assertTrue(refused(() -> BinIdxDataset.open(p).close()).contains("header says"));
        Path meta = BinIdxFormat.meta(packed);
        try (var ch = java.nio.channels.FileChannel.open(meta, java.nio.file.StandardOpenOption.WRITE)) {
            ch.write(ByteBuffer.wrap(new byte[]{' '}), DatasetMeta.MAX_BYTES + 10);   // sparse: large but cheap
        }
        assertTrue(refused(() -> DatasetMeta.read(packed)).contains("bytes, more than"));
    }

    @Test
    void aMaskFlagOtherThanZeroOrOneIsRefused() throws IOException {
        Path p = build("d", "hello", "world");
        Path mask = BinIdxFormat.mask(p);
        byte[] m = Files.readAllBytes(mask);
        m[BinIdxFormat.MASK_HEADER_BYTES + 7] = 17;
        Files.write(mask, m);
        try (BinIdxDataset d = BinIdxDataset.open(p)) {
            String msg = refused(d::trainedTokenCount);
            assertTrue(msg.contains("flag 17 for token 7") && msg.contains("expected 0 or 1"), msg);
            assertTrue(refused(() -> d.mask(1)).contains("flag 17 for token 7"));
            assertEquals(6, d.mask(0).length, "document 0 is fine");
        }
    }

    @Test
    void pointersThatDisagreeWithTheSizesAreRefused() throws IOException {
        Path p = build("d", "hello", "worlds", "!");
        Path idx = BinIdxFormat.idx(p);
        byte[] good = Files.readAllBytes(idx);
        int pointers = BinIdxFormat.IDX_HEADER_BYTES + 3 * 4;
        // swapped: item 1 and 2 point at each other's data (sizes unchanged)
        byte[] swapped = good.clone();
        ByteBuffer s = ByteBuffer.wrap(swapped).order(ByteOrder.LITTLE_ENDIAN);
        long p1 = s.getLong(pointers + 8), p2 = s.getLong(pointers + 16);
        s.putLong(pointers + 8, p2).putLong(pointers + 16, p1);
        Files.write(idx, swapped);
        String msg = refused(() -> BinIdxDataset.open(p).close());
        assertTrue(msg.contains("item 1 has pointer " + p2) && msg.contains("must be " + p1), msg);
        // odd (misaligned for uint16) and shifted by one token
        for (long delta : new long[]{1, 2, -2}) {
            byte[] bad = good.clone();
            ByteBuffer bb = ByteBuffer.wrap(bad).order(ByteOrder.LITTLE_ENDIAN);
            bb.putLong(pointers + 8, bb.getLong(pointers + 8) + delta);
            Files.write(idx, bad);
            assertTrue(refused(() -> BinIdxDataset.open(p).close()).contains("pointer"));
        }
        // doc_idx must run from 0 to the item count
        byte[] docIdx = good.clone();
        docIdx[docIdx.length - 1] ^= 0x10;
        Files.write(idx, docIdx);
        assertTrue(refused(() -> BinIdxDataset.open(p).close()).contains("doc_idx[3]"));
        // a .bin longer than the index says
        Files.write(idx, good);
        Files.write(BinIdxFormat.bin(p), new byte[]{1, 0}, java.nio.file.StandardOpenOption.APPEND);
        assertTrue(refused(() -> BinIdxDataset.open(p).close()).contains("do not belong together"));
    }
}
