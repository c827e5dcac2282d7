package ai.longrwkv.datasets.io;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.channels.FileChannel;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * The files of one dataset (.bin, .idx, .mask, ...) written under temporary names in their own directories and put in
 * place only when all of them are complete.
 *
 * <p>A set of files cannot be renamed atomically as a whole, so one of them is the commit marker (the .idx: without
 * it no reader opens the dataset). {@link #commit} deletes the old marker first, renames the other files, and renames
 * the new marker last. An interruption at any point leaves either the old complete dataset or no .idx at all, never a
 * new .idx beside half-written data. Temporary files are named {@code TARGET.tmp-PID-NANOS}; {@link #close} deletes
 * those not committed, a shutdown hook does so on Ctrl-C, and after a hard kill the next run for the same target
 * deletes the ones whose process is gone.
 */
public final class AtomicFileSet implements AutoCloseable {
    private final Map<Path, Path> tempOfTarget = new LinkedHashMap<>();
    private final Thread cleanupHook = new Thread(this::deleteTemps, "longrwkv-temp-cleanup");
    private boolean hookRegistered;
    private boolean committed;

    public AtomicFileSet() {
        try {
            Runtime.getRuntime().addShutdownHook(cleanupHook);
            hookRegistered = true;
        } catch (IllegalStateException shuttingDown) {
            hookRegistered = false;
        }
    }

    /** A new temporary file for this target, in the target's directory (so the final rename stays on one file system). */
    public synchronized Path temp(Path target) {
        Path absolute = target.toAbsolutePath();
        if (tempOfTarget.containsKey(absolute)) throw new IllegalStateException("temporary file for " + target + " requested twice");
        Path dir = absolute.getParent();
        try {
            Files.createDirectories(dir);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot create output directory " + dir + ": " + e.getMessage(), e);
        }
        deleteStaleTemps(absolute);
        Path temp = dir.resolve(absolute.getFileName() + ".tmp-" + ProcessHandle.current().pid() + "-" + System.nanoTime());
        tempOfTarget.put(absolute, temp);
        return temp;
    }

    /**
     * Forces every temporary file to disk and renames them over their targets, the marker last (see the class
     * comment). Every temporary file must exist.
     */
    public synchronized void commit(Path marker) {
        Path markerTarget = marker.toAbsolutePath();
        Path markerTemp = tempOfTarget.get(markerTarget);
        if (markerTemp == null) throw new IllegalStateException("commit marker " + marker + " is not one of the files of this set");
        try {
            for (Path temp : tempOfTarget.values()) {
                try (FileChannel ch = FileChannel.open(temp, StandardOpenOption.WRITE)) {
                    ch.force(true);
                }
            }
            Files.deleteIfExists(markerTarget);
            syncDirectory(markerTarget.getParent());
            for (Map.Entry<Path, Path> e : tempOfTarget.entrySet()) {
                if (!e.getKey().equals(markerTarget)) move(e.getValue(), e.getKey());
            }
            for (Path dir : directories()) syncDirectory(dir);
            move(markerTemp, markerTarget);
            syncDirectory(markerTarget.getParent());
            committed = true;
        } catch (IOException e) {
            throw new UncheckedIOException("cannot put the output files in place (" + markerTarget + "): " + e.getMessage(), e);
        }
    }

    /** Deletes the temporary files unless committed. */
    @Override
    public synchronized void close() {
        if (!committed) deleteTemps();
        if (hookRegistered) {
            try {
                Runtime.getRuntime().removeShutdownHook(cleanupHook);
            } catch (IllegalStateException shuttingDown) {
                // the hook is running or about to: it deletes the same files
            }
            hookRegistered = false;
        }
    }

    private synchronized void deleteTemps() {
        if (committed) return;
        for (Path temp : tempOfTarget.values()) {
            try {
                Files.deleteIfExists(temp);
            } catch (IOException ignored) {
                // best effort: the name says what it is
            }
        }
    }

    private List<Path> directories() {
        List<Path> dirs = new ArrayList<>();
        for (Path target : tempOfTarget.keySet()) if (!dirs.contains(target.getParent())) dirs.add(target.getParent());
        return dirs;
    }

    private static void move(Path from, Path to) throws IOException {
        try {
            Files.move(from, to, StandardCopyOption.ATOMIC_MOVE);
        } catch (AtomicMoveNotSupportedException e) {
            Files.move(from, to, StandardCopyOption.REPLACE_EXISTING);
        }
    }

    /** Deletes TARGET.tmp-PID-* files left by processes that no longer run (a kill -9 runs no cleanup). */
    static void deleteStaleTemps(Path target) {
        String prefix = target.getFileName() + ".tmp-";
        try (DirectoryStream<Path> files = Files.newDirectoryStream(target.getParent(), prefix + "*")) {
            for (Path f : files) {
                String rest = f.getFileName().toString().substring(prefix.length());
                int dash = rest.indexOf('-');
                if (dash <= 0) continue;
                long pid;
                try {
                    pid = Long.parseLong(rest.substring(0, dash));
                } catch (NumberFormatException e) {
                    continue;
                }
                Optional<ProcessHandle> owner = ProcessHandle.of(pid);
                if (owner.isEmpty() || !owner.get().isAlive()) Files.deleteIfExists(f);
            }
        } catch (IOException ignored) {
            // stale files are only clutter; never fail a run over them
        }
    }

    /** Makes renames durable where the platform allows fsync on a directory (Linux does). */
    private static void syncDirectory(Path dir) {
        try (FileChannel d = FileChannel.open(dir, StandardOpenOption.READ)) {
            d.force(true);
        } catch (IOException | UnsupportedOperationException e) {
            // best effort only: the data itself is already on disk
        }
    }
}
