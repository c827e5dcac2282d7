package ai.longrwkv.cli;

import picocli.CommandLine;
import picocli.CommandLine.Model.ArgSpec;
import picocli.CommandLine.Model.OptionSpec;

import java.io.IOException;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;

/**
 * {@code --config FILE} (or {@code --config=FILE}): a properties file whose keys are the long option names of the
 * command without the dashes ({@code ctx-len=131072}, {@code lr=1e-5}); its values become the defaults, so flags on
 * the command line win. Every problem is an IllegalArgumentException naming the file and the line: a missing or
 * unreadable file, a key that is not an option of the command (with the nearest option name), a key given twice, a
 * value that does not fit the option's type, a malformed backslash-u escape. Syntax: {@code key=value}, {@code key: value} or
 * {@code key value}; lines starting with # or ! are comments; a line ending in \ continues on the next; escapes
 * backslash t, n, r, f, backslash, and backslash-u with four hex digits.
 */
final class ConfigFile {
    private ConfigFile() { }

    private static final Set<String> NOT_CONFIGURABLE = Set.of("help", "version", "config");
    private static final long MAX_BYTES = 1 << 20;

    record Entry(String value, int line) { }

    /** Finds --config among args and makes its entries the defaults of the (sub)command it is given to. */
    static void apply(CommandLine root, String[] args) {
        String file = null;
        CommandLine target = root, current = root;
        for (int i = 0; i < args.length; i++) {
            String a = args[i];
            if (a.equals("--")) break;
            if (current.getSubcommands().containsKey(a)) {
                current = current.getSubcommands().get(a);
                continue;
            }
            if (a.equals("--config") || a.startsWith("--config=")) {
                if (!current.getCommandSpec().optionsMap().containsKey("--config")) return;   // picocli reports the unknown option
                if (file != null) throw new IllegalArgumentException("--config is given twice");
                if (a.equals("--config")) {
                    if (i + 1 >= args.length) return;   // picocli reports the missing value
                    file = args[++i];
                } else {
                    file = a.substring("--config=".length());
                }
                target = current;
            }
        }
        if (file == null) return;
        Path path = Path.of(file);
        Map<String, Entry> entries = parse(path);
        Map<String, OptionSpec> options = new LinkedHashMap<>();
        for (OptionSpec o : target.getCommandSpec().options()) {
            String name = o.longestName().replaceFirst("^-+", "");
            if (!NOT_CONFIGURABLE.contains(name)) options.put(name, o);
        }
        for (Map.Entry<String, Entry> e : entries.entrySet()) {
            String key = e.getKey();
            OptionSpec o = options.get(key);
            if (o == null) {
                String near = nearest(key, options.keySet());
                throw new IllegalArgumentException(path + " line " + e.getValue().line() + ": '" + key + "' is not an option of `"
                        + target.getCommandSpec().qualifiedName() + "`" + (near != null ? " (did you mean '" + near + "'?)" : "")
                        + "; keys are the long option names without dashes");
            }
            checkValue(path, e.getValue(), key, o);
        }
        CommandLine.IDefaultValueProvider provider = (ArgSpec spec) -> {
            if (!(spec instanceof OptionSpec o)) return null;
            Entry e = entries.get(o.longestName().replaceFirst("^-+", ""));
            return e == null ? null : e.value();
        };
        target.setDefaultValueProvider(provider);
    }

    /** The value must convert to the option's type: whole numbers for int/long, finite-or-not numbers for double, true/false for flags. */
    private static void checkValue(Path path, Entry e, String key, OptionSpec o) {
        Class<?> t = o.type();
        String v = e.value().strip();
        String where = path + " line " + e.line() + ": " + key + " = '" + e.value() + "'";
        try {
            if (t == int.class || t == Integer.class) Integer.parseInt(v);
            else if (t == long.class || t == Long.class) Long.parseLong(v);
            else if (t == double.class || t == Double.class) Double.parseDouble(v);
            else if (t == boolean.class || t == Boolean.class) {
                if (!v.equalsIgnoreCase("true") && !v.equalsIgnoreCase("false")) throw new IllegalArgumentException(where + ": expected true or false");
            }
        } catch (NumberFormatException ex) {
            throw new IllegalArgumentException(where + ": expected " + (t == double.class || t == Double.class ? "a number" : "a whole number"));
        }
        if (v.isEmpty() && t != String.class && !java.util.Collection.class.isAssignableFrom(t)) throw new IllegalArgumentException(where + ": empty value");
    }

    /** Parses the file; keys and values unescaped, with the line where each key starts. */
    static Map<String, Entry> parse(Path path) {
        if (!Files.exists(path)) throw new IllegalArgumentException("--config " + path + ": file not found");
        if (Files.isDirectory(path)) throw new IllegalArgumentException("--config " + path + ": is a directory, expected a properties file");
        if (!Files.isRegularFile(path)) throw new IllegalArgumentException("--config " + path + ": not a regular file (a FIFO or device?), expected a properties file");
        if (!Files.isReadable(path)) throw new IllegalArgumentException("--config " + path + ": cannot be read (permission denied)");
        String text;
        try {
            long size = Files.size(path);
            if (size > MAX_BYTES) throw new IllegalArgumentException("--config " + path + ": " + size + " bytes, too large for a properties file");
            text = StandardCharsets.UTF_8.newDecoder().onMalformedInput(CodingErrorAction.REPORT)
                    .decode(java.nio.ByteBuffer.wrap(Files.readAllBytes(path))).toString();
        } catch (CharacterCodingException e) {
            throw new IllegalArgumentException("--config " + path + ": not UTF-8 text");
        } catch (IOException e) {
            throw new IllegalArgumentException("--config " + path + ": cannot be read: " + e.getMessage());
        }
        if (text.startsWith("\uFEFF")) text = text.substring(1);
        String[] lines = text.split("\r\n|\r|\n", -1);
        Map<String, Entry> out = new LinkedHashMap<>();
        for (int i = 0; i < lines.length; i++) {
            int startLine = i + 1;
            String line = stripLeading(lines[i]);
            if (line.isEmpty() || line.charAt(0) == '#' || line.charAt(0) == '!') continue;
            StringBuilder logical = new StringBuilder(line);
            while (endsWithContinuation(logical) && i + 1 < lines.length) {
                logical.setLength(logical.length() - 1);
                logical.append(stripLeading(lines[++i]));
            }
            if (endsWithContinuation(logical)) logical.setLength(logical.length() - 1);
            String l = logical.toString();
            int sep = separator(l);
            String rawKey = sep < 0 ? l : l.substring(0, sep);
            String rawValue = sep < 0 ? "" : l.substring(sep + 1);
            if (sep >= 0 && Character.isWhitespace(l.charAt(sep))) {
                rawValue = stripLeading(rawValue);   // "key value" or "key = value"
                if (!rawValue.isEmpty() && (rawValue.charAt(0) == '=' || rawValue.charAt(0) == ':')) rawValue = rawValue.substring(1);
            }
            String key = unescape(path, startLine, rawKey.strip());
            String value = unescape(path, startLine, stripLeading(rawValue)).strip();
            if (key.isEmpty()) throw new IllegalArgumentException(path + " line " + startLine + ": no key before the '='");
            Entry before = out.put(key, new Entry(value, startLine));
            if (before != null) throw new IllegalArgumentException(path + " line " + startLine + ": '" + key + "' is given twice (also line " + before.line() + ")");
        }
        return out;
    }

    private static boolean endsWithContinuation(CharSequence s) {
        int backslashes = 0;
        for (int i = s.length() - 1; i >= 0 && s.charAt(i) == '\\'; i--) backslashes++;
        return backslashes % 2 == 1;
    }

    /** Index of the first unescaped '=', ':' or whitespace: the end of the key. */
    private static int separator(String l) {
        for (int i = 0; i < l.length(); i++) {
            char c = l.charAt(i);
            if (c == '\\') {
                i++;
                continue;
            }
            if (c == '=' || c == ':' || Character.isWhitespace(c)) return i;
        }
        return -1;
    }

    private static String unescape(Path path, int line, String s) {
        if (s.indexOf('\\') < 0) return s;
        StringBuilder b = new StringBuilder(s.length());
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (c != '\\' || i + 1 == s.length()) {
                b.append(c);
                continue;
            }
            char n = s.charAt(++i);
            switch (n) {
                case 't' -> b.append('\t');
                case 'n' -> b.append('\n');
                case 'r' -> b.append('\r');
                case 'f' -> b.append('\f');
                case 'u' -> {
                    String hex = s.length() >= i + 5 ? s.substring(i + 1, i + 5) : s.substring(i + 1);
                    if (hex.length() < 4 || !hex.matches("[0-9a-fA-F]{4}")) {
                        throw new IllegalArgumentException(path + " line " + line + ": malformed escape '\\u" + hex
                                + "': \\u needs four hex digits (write \\\\ for a backslash, e.g. in a Windows path)");
                    }
                    b.append((char) Integer.parseInt(hex, 16));
                    i += 4;
                }
                default -> b.append(n);
            }
        }
        return b.toString();
    }

    private static String stripLeading(String s) {
        int i = 0;
        while (i < s.length() && (s.charAt(i) == ' ' || s.charAt(i) == '\t' || s.charAt(i) == '\f')) i++;
        return s.substring(i);
    }

    /** The closest option name (edit distance up to 3, or the same letters with _ for -), or null. */
    private static String nearest(String key, Iterable<String> names) {
        String k = key.toLowerCase(Locale.ROOT).replace('_', '-').replaceFirst("^-+", "");
        String best = null;
        int bestDistance = Integer.MAX_VALUE;
        for (String n : names) {
            int d = n.equals(k) ? 0 : LongRwkv.editDistance(k, n);
            if (d < bestDistance) {
                bestDistance = d;
                best = n;
            }
        }
        return bestDistance <= Math.max(2, Math.min(3, k.length() / 3)) ? best : null;
    }

    /** For tests: the keys of a file in order. */
    static List<String> keys(Path path) {
        return new ArrayList<>(parse(path).keySet());
    }
}
