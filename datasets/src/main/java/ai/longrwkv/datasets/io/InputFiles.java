package ai.longrwkv.datasets.io;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.FileSystemException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.BasicFileAttributes;

/**
 * Checks on the files of a dataset before they are opened. A file that is there but cannot be used (a dangling
 * symbolic link, a link loop, a directory, a FIFO or device such as /dev/zero, a file that cannot be read) is an
 * error, never taken as absent: an unreadable .mask must not silently mean "train every token", and a FIFO must not
 * block a reader forever.
 */
public final class InputFiles {
    private InputFiles() { }

    /**
     * Whether {@code file} is there. False only when nothing at all is at that path (no file, no link); true when it
     * is a readable regular file (directly or through links); otherwise an IllegalArgumentException saying what is
     * wrong. {@code what} names the file's role ("loss mask", "index").
     */
    public static boolean present(Path file, String what) {
        if (!Files.exists(file, LinkOption.NOFOLLOW_LINKS)) return false;
        BasicFileAttributes attrs;
        try {
            attrs = Files.readAttributes(file, BasicFileAttributes.class);
        } catch (NoSuchFileException e) {
            throw new IllegalArgumentException(file + " (" + what + ") is a symbolic link to " + linkTarget(file)
                    + ", which does not exist: restore the file or remove the dangling link");
        } catch (FileSystemException e) {
            String reason = e.getReason() == null ? "cannot be resolved" : e.getReason();
            if (reason.toLowerCase(java.util.Locale.ROOT).contains("levels of symbolic links")) {
                throw new IllegalArgumentException(file + " (" + what + ") is a symbolic link loop: expected a file");
            }
            throw new IllegalArgumentException(file + " (" + what + ") is there but cannot be read: " + reason);
        } catch (IOException e) {
            throw new IllegalArgumentException(file + " (" + what + ") is there but cannot be read: " + e.getMessage());
        }
        if (attrs.isDirectory()) throw new IllegalArgumentException(file + " (" + what + ") is a directory: expected a file");
        if (!attrs.isRegularFile()) {
            throw new IllegalArgumentException(file + " (" + what + ") is not a regular file (a FIFO, device or socket): expected a file");
        }
        if (!Files.isReadable(file)) throw new IllegalArgumentException(file + " (" + what + ") is there but cannot be read (permission denied)");
        return true;
    }

    /** Like {@link #present} for a file that must be there; {@code missing} is the message when it is not. */
    public static void require(Path file, String what, String missing) {
        if (!present(file, what)) throw new IllegalArgumentException(missing);
    }

    /** Size in bytes of a file that {@link #present} accepted. */
    public static long size(Path file) {
        try {
            return Files.size(file);
        } catch (IOException e) {
            throw new IllegalArgumentException(file + ": cannot read its size: " + e.getMessage());
        }
    }

    /** The whole file, refused (before reading) when it is larger than {@code maxBytes}. */
    public static byte[] readAtMost(Path file, long maxBytes, String what) {
        long size = size(file);
        if (size > maxBytes) {
            throw new IllegalArgumentException(file + " (" + what + ") has " + size + " bytes, more than the " + maxBytes + " it can be");
        }
        try {
            return Files.readAllBytes(file);
        } catch (IOException e) {
            throw new UncheckedIOException(file + ": cannot read " + what + ": " + e.getMessage(), e);
        }
    }

    /** Bytes [0, n) of a file (fewer if it is shorter). */
    public static byte[] readHead(Path file, int n) {
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
            ByteBuffer b = ByteBuffer.allocate((int) Math.min(n, ch.size()));
            while (b.hasRemaining() && ch.read(b) > 0) { }
            return java.util.Arrays.copyOf(b.array(), b.position());
        } catch (IOException e) {
            throw new UncheckedIOException(file + ": cannot read: " + e.getMessage(), e);
        }
    }

    private static String linkTarget(Path link) {
        try {
            return Files.readSymbolicLink(link).toString();
        } catch (IOException | UnsupportedOperationException e) {
            return "a missing file";
        }
    }
}
