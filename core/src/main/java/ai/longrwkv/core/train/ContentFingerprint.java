package ai.longrwkv.core.train;

import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;

/**
 * What identifies a file's content cheaply, for resume checks: its size and the SHA-256 of its first and last MiB
 * (the whole file when it is at most 2 MiB). The same model or dataset reached by another path (relative, absolute,
 * through a link, copied) gives the same fingerprint; another file of the same name does not. A change that keeps
 * the size and touches only the middle of a large file goes unnoticed: the point is to catch a different file, not
 * tampering (checkpoints carry full checksums for that, see {@link Trainer#saveCheckpoint}).
 */
public final class ContentFingerprint {
    private ContentFingerprint() { }

    static final int EDGE_BYTES = 1 << 20;

    /** "bytes=N sha256(head+tail)=HEX" of a readable file. */
    public static String of(Path file) {
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
            long size = ch.size();
            MessageDigest md = sha256();
            digestRange(ch, 0, size <= 2L * EDGE_BYTES ? size : EDGE_BYTES, md);
            if (size > 2L * EDGE_BYTES) digestRange(ch, size - EDGE_BYTES, EDGE_BYTES, md);
            return "bytes=" + size + " sha256(first+last MiB)=" + HexFormat.of().formatHex(md.digest());
        } catch (IOException e) {
            throw new IllegalArgumentException(file + ": cannot read it to identify it: " + e.getMessage());
        }
    }

    /** SHA-256 of a whole file, hex. */
    public static String sha256(Path file) throws IOException {
        MessageDigest md = sha256();
        byte[] buf = new byte[1 << 16];
        try (InputStream in = Files.newInputStream(file)) {
            for (int n = in.read(buf); n > 0; n = in.read(buf)) md.update(buf, 0, n);
        }
        return HexFormat.of().formatHex(md.digest());
    }

    /** SHA-256 of a string's UTF-8 bytes, hex. */
    public static String sha256(String text) {
        return HexFormat.of().formatHex(sha256().digest(text.getBytes(java.nio.charset.StandardCharsets.UTF_8)));
    }

    private static void digestRange(FileChannel ch, long from, long length, MessageDigest md) throws IOException {
        ByteBuffer buf = ByteBuffer.allocate(1 << 16);
        long pos = from, end = from + length;
        while (pos < end) {
            buf.clear();
            buf.limit((int) Math.min(buf.capacity(), end - pos));
            int n = ch.read(buf, pos);
            if (n <= 0) break;
            md.update(buf.array(), 0, n);
            pos += n;
        }
    }

    private static MessageDigest sha256() {
        try {
            return MessageDigest.getInstance("SHA-256");
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }
}
