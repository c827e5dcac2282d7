package ai.longrwkv.core.train;

import ai.longrwkv.core.io.Safetensors;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParseException;
import com.google.gson.JsonParser;

import java.io.IOException;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;

/**
 * The checkpoint directory of a run ({@code DIR/checkpoints}): {@code step-NNNNNNNN/} directories, the {@code latest}
 * pointer, and the temporary directories a checkpoint is written in. Verifies a checkpoint before a resume uses it.
 */
public final class Checkpoints {
    private Checkpoints() { }

    static final Pattern STEP_DIR = Pattern.compile("step-(\\d{8,})");
    /** .tmp-step-NNNNNNNN-PID-random: the writer's process id, so that only dead writers' leftovers are removed. */
    private static final Pattern TEMP = Pattern.compile("\\.tmp-step-\\d+-(\\d+)-.*");
    /** AtomicFiles' temporaries: NAME.tmp-PID-nanos. */
    private static final Pattern ATOMIC_TEMP = Pattern.compile(".+\\.tmp-(\\d+)-\\d+");
    private static final long MAX_TRAINER_JSON_BYTES = 1 << 20;

    record Verified(Path dir, JsonObject meta, long step) { }

    static String dirName(long step) {
        return String.format("step-%08d", step);
    }

    static String tempPrefix(String dirName) {
        return tempPrefix(dirName, ProcessHandle.current().pid());
    }

    /** The temporary name of a checkpoint written by process {@code pid} (a data-parallel group's: rank 0's). */
    static String tempPrefix(String dirName, long pid) {
        return ".tmp-" + dirName + "-" + pid + "-";
    }

    /**
     * The tensors of every file of a verified checkpoint whose name starts like {@code file} (trainable.safetensors,
     * or a sharded checkpoint's trainable.rank-R.safetensors), merged; a key in two files is an error.
     */
    static Map<String, ai.longrwkv.core.tensor.HostTensor> readAll(Verified ck, String file) {
        String base = file.substring(0, file.length() - ".safetensors".length());
        Map<String, ai.longrwkv.core.tensor.HostTensor> all = new java.util.LinkedHashMap<>();
        for (String f : ck.meta().getAsJsonObject("files").keySet()) {
            if (!f.equals(file) && !(f.startsWith(base + ".rank-") && f.endsWith(".safetensors"))) continue;
            for (var e : Safetensors.readTensors(ck.dir().resolve(f)).entrySet()) {
                if (all.put(e.getKey(), e.getValue()) != null) {
                    throw new IllegalArgumentException("checkpoint " + ck.dir() + ": '" + e.getKey() + "' is in two of its " + base + " files");
                }
            }
        }
        return all;
    }

    /**
     * Removes what a killed writer left in the checkpoint directory: temporary checkpoint directories and temporary
     * pointer files of processes that are no longer running (and temporary directories of the older naming, which
     * had no process id). A live writer's files are left alone.
     */
    static void removeStaleTemporaries(Path dir) {
        removeStaleTemporaries(dir, true);
    }

    /** checkpointDir false (the run's output directory): only AtomicFiles' temporary regular files, never directories. */
    static void removeStaleTemporaries(Path dir, boolean checkpointDir) {
        if (!Files.isDirectory(dir)) return;
        List<Path> stale = new ArrayList<>();
        try (Stream<Path> list = Files.list(dir)) {
            list.forEach(p -> {
                String name = p.getFileName().toString();
                Matcher t = TEMP.matcher(name), a = ATOMIC_TEMP.matcher(name);
                if (!checkpointDir) {
                    if (a.matches() && Files.isRegularFile(p, LinkOption.NOFOLLOW_LINKS) && !alive(a.group(1))) stale.add(p);
                } else if (t.matches()) {
                    if (!alive(t.group(1))) stale.add(p);
                } else if (name.startsWith(".tmp-step-")) {
                    stale.add(p);
                } else if (a.matches() && !alive(a.group(1))) {
                    stale.add(p);
                }
            });
        } catch (IOException e) {
            return;   // leftovers are clutter, not a wrong result; the write itself reports real problems
        }
        for (Path p : stale) {
            try {
                if (Files.isDirectory(p, LinkOption.NOFOLLOW_LINKS)) Trainer.deleteRecursively(p); else Files.deleteIfExists(p);
            } catch (IOException ignored) {
                // as above
            }
        }
    }

    private static boolean alive(String pid) {
        try {
            long id = Long.parseLong(pid);
            return id == ProcessHandle.current().pid() || ProcessHandle.of(id).map(ProcessHandle::isAlive).orElse(false);
        } catch (NumberFormatException e) {
            return false;
        }
    }

    /** The checkpoint {@code dir/latest} names, verified; every problem is an IllegalArgumentException naming the file. */
    static Verified verify(Path dir) {
        Path latest = dir.resolve("latest");
        if (!Files.exists(latest)) {
            throw new IllegalArgumentException("--resume " + dir.getParent() + ": no checkpoint there (no 'latest' file in " + dir + ")"
                    + (Files.isDirectory(dir) ? available(dir) : ""));
        }
        if (!Files.isRegularFile(latest)) throw new IllegalArgumentException(latest + " is not a file: expected the name of the latest checkpoint");
        String name;
        try {
            if (Files.size(latest) > 4096) throw new IllegalArgumentException(latest + ": " + Files.size(latest) + " bytes, expected a checkpoint name such as step-00000020");
            name = StandardCharsets.UTF_8.newDecoder().decode(java.nio.ByteBuffer.wrap(Files.readAllBytes(latest))).toString().strip();
        } catch (CharacterCodingException e) {
            throw new IllegalArgumentException(latest + ": not text; expected a checkpoint name such as step-00000020");
        } catch (IOException e) {
            throw new IllegalArgumentException(latest + ": cannot read: " + e.getMessage());
        }
        Matcher m = STEP_DIR.matcher(name);
        if (!m.matches()) {
            throw new IllegalArgumentException(latest + (name.isEmpty() ? " is empty" : " says '" + shorten(name) + "'")
                    + ": expected a checkpoint name such as step-00000020" + available(dir));
        }
        Path ck = dir.resolve(name);
        if (!Files.isDirectory(ck)) throw new IllegalArgumentException(latest + " names " + name + ", but " + ck + " is not there" + available(dir));
        return verifyStep(ck, Long.parseLong(m.group(1)));
    }

    /** One checkpoint directory (step-NNNNNNNN), verified as {@link #verify} does. */
    private static Verified verifyStep(Path ck, long dirStep) {
        String name = ck.getFileName().toString();
        Path json = ck.resolve("trainer.json");
        JsonObject meta = readTrainerJson(json);
        JsonElement format = meta.get("format");
        if (format == null && !meta.has("sha256") && meta.has("step")) {
            throw new IllegalArgumentException(json + ": a checkpoint without checksums (written by an older longrwkv): it cannot be verified,"
                    + " start the run again");
        }
        String recorded = string(json, meta, "sha256");
        JsonObject rest = meta.deepCopy();
        rest.remove("sha256");
        if (!ContentFingerprint.sha256(Trainer.GSON.toJson(rest)).equals(recorded)) {
            throw new IllegalArgumentException(json + " does not match its own checksum: it was edited or is corrupt");
        }
        if (format == null || !format.isJsonPrimitive() || !format.getAsJsonPrimitive().isNumber() || format.getAsInt() != Trainer.CHECKPOINT_FORMAT) {
            throw new IllegalArgumentException(json + ": checkpoint format " + format + ", expected " + Trainer.CHECKPOINT_FORMAT);
        }
        long step = number(json, meta, "step");
        if (step != dirStep) throw new IllegalArgumentException(json + " says step " + step + " but its directory is " + name);
        JsonElement files = meta.get("files");
        if (files == null || !files.isJsonObject()) throw new IllegalArgumentException(json + ": no 'files' checksums");
        List<String> toCheck = new ArrayList<>();
        JsonElement ranks = meta.get("ranks");
        if (ranks == null) {
            toCheck.addAll(List.of(Trainer.CHECKPOINT_FILES));
        } else {   // a sharded (ZeRO 1) checkpoint: each rank's part of both files
            long n = number(json, meta, "ranks");
            if (n < 2 || n > 65536) throw new IllegalArgumentException(json + ": 'ranks' is " + n + ", expected 2..65536");
            for (int r = 0; r < n; r++) for (String f : Trainer.CHECKPOINT_FILES) toCheck.add(Trainer.shardFile(f, r));
        }
        if (files.getAsJsonObject().has(Trainer.CARRY_FILE)) toCheck.add(Trainer.CARRY_FILE);   // written by --carry-state runs
        for (String f : toCheck) {
            Path file = ck.resolve(f);
            JsonElement e = files.getAsJsonObject().get(f);
            if (e == null || !e.isJsonObject()) throw new IllegalArgumentException(json + ": no checksum for " + f);
            long bytes = number(json, e.getAsJsonObject(), "bytes");
            String sha = string(json, e.getAsJsonObject(), "sha256");
            if (!Files.isRegularFile(file)) {
                throw new IllegalArgumentException("checkpoint " + ck + ": " + f + " is " + (Files.exists(file, LinkOption.NOFOLLOW_LINKS) ? "not a regular file" : "missing"));
            }
            try {
                long size = Files.size(file);
                if (size != bytes) throw new IllegalArgumentException(file + " has " + size + " bytes, trainer.json records " + bytes + ": truncated or replaced");
                if (!ContentFingerprint.sha256(file).equals(sha)) {
                    throw new IllegalArgumentException(file + " does not match its SHA-256 in trainer.json: changed or corrupt");
                }
            } catch (IOException ex) {
                throw new IllegalArgumentException(file + ": cannot read: " + ex.getMessage());
            }
            Map<String, String> fileMeta = Safetensors.readMetadata(file);
            String s = fileMeta == null ? null : fileMeta.get("step");
            if (!Long.toString(step).equals(s)) {
                throw new IllegalArgumentException(file + " is from step " + s + ", trainer.json from step " + step + ": the files do not belong together");
            }
        }
        return new Verified(ck, meta, step);
    }

    /** A verified checkpoint's trained tensors, every shard merged, and the mode of the run that wrote it. */
    public record Contents(Path dir, long step, Trainer.Mode mode, Map<String, ai.longrwkv.core.tensor.HostTensor> trainables) { }

    /**
     * Reads the checkpoint at {@code path}: a checkpoint directory (step-NNNNNNNN), a run's checkpoints directory (its
     * latest) or a run's output directory (its checkpoints/latest); verified (sizes, SHA-256, steps) before anything is
     * read. A sharded (ZeRO 1/2) checkpoint's parts are merged: the result is what one device would have written.
     */
    public static Contents read(Path path) {
        Verified ck;
        Matcher m = STEP_DIR.matcher(path.getFileName() == null ? "" : path.getFileName().toString());
        if (m.matches() && Files.isDirectory(path)) ck = verifyStep(path, Long.parseLong(m.group(1)));
        else if (Files.isDirectory(path.resolve("checkpoints"))) ck = verify(path.resolve("checkpoints"));
        else ck = verify(path);
        String config = string(ck, "config");
        Trainer.Mode mode;
        try {
            mode = Trainer.Mode.valueOf(config.substring(0, Math.max(0, config.indexOf(' '))));
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException(ck.dir().resolve("trainer.json") + ": 'config' does not start with the training mode: '" + shorten(config) + "'");
        }
        return new Contents(ck.dir(), ck.step(), mode, readAll(ck, Trainer.CHECKPOINT_FILES[0]));
    }

    private static JsonObject readTrainerJson(Path json) {
        String text;
        try {
            if (!Files.isRegularFile(json)) {
                throw new IllegalArgumentException("checkpoint " + json.getParent() + ": trainer.json is "
                        + (Files.exists(json, LinkOption.NOFOLLOW_LINKS) ? "not a regular file" : "missing"));
            }
            if (Files.size(json) > MAX_TRAINER_JSON_BYTES) throw new IllegalArgumentException(json + ": " + Files.size(json) + " bytes, not a trainer.json");
            text = StandardCharsets.UTF_8.newDecoder().decode(java.nio.ByteBuffer.wrap(Files.readAllBytes(json))).toString();
        } catch (CharacterCodingException e) {
            throw new IllegalArgumentException(json + ": not UTF-8 text");
        } catch (IOException e) {
            throw new IllegalArgumentException(json + ": cannot read: " + e.getMessage());
        }
        if (text.isBlank()) throw new IllegalArgumentException(json + " is empty: expected the checkpoint's JSON (step, checksums)");
        try {
            JsonElement e = JsonParser.parseString(text);
            if (!e.isJsonObject()) throw new IllegalArgumentException(json + ": expected a JSON object");
            return e.getAsJsonObject();
        } catch (JsonParseException e) {
            throw new IllegalArgumentException(json + ": not valid JSON");
        }
    }

    static String string(Verified ck, String key) {
        return string(ck.dir().resolve("trainer.json"), ck.meta(), key);
    }

    static long number(Verified ck, String key) {
        return number(ck.dir().resolve("trainer.json"), ck.meta(), key);
    }

    private static String string(Path file, JsonObject o, String key) {
        JsonElement e = o.get(key);
        if (e == null || !e.isJsonPrimitive() || !e.getAsJsonPrimitive().isString()) {
            throw new IllegalArgumentException(file + ": '" + key + "' " + (e == null ? "is missing" : "must be a string"));
        }
        return e.getAsString();
    }

    private static long number(Path file, JsonObject o, String key) {
        JsonElement e = o.get(key);
        if (e == null || !e.isJsonPrimitive() || !e.getAsJsonPrimitive().isNumber()) {
            throw new IllegalArgumentException(file + ": '" + key + "' " + (e == null ? "is missing" : "must be a number"));
        }
        try {
            return new java.math.BigDecimal(e.getAsString()).longValueExact();
        } catch (ArithmeticException | NumberFormatException ex) {
            throw new IllegalArgumentException(file + ": '" + key + "' must be a whole number, got " + e.getAsString());
        }
    }

    private static String available(Path dir) {
        List<String> steps = new ArrayList<>();
        try (Stream<Path> list = Files.list(dir)) {
            list.map(p -> p.getFileName().toString()).filter(n -> STEP_DIR.matcher(n).matches()).sorted().forEach(steps::add);
        } catch (IOException e) {
            return "";
        }
        return steps.isEmpty() ? " (no step-N directories there)" : " (checkpoints there: " + String.join(", ", steps) + "; write one of those names into it)";
    }

    private static String shorten(String s) {
        return s.length() > 60 ? s.substring(0, 60) + "..." : s;
    }
}
