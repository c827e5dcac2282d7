package ai.longrwkv.datasets.build;

import java.io.IOException;
import java.io.Reader;
import java.io.UncheckedIOException;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.EnumSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * How a conversation becomes text: the prefix of each role's turn, what separates turns, how a character's persona
 * becomes the system turn, and which roles are trained. Used by `data build` (chat and pippa formats), `generate`,
 * `chat` and `eval persona`, so that training and inference see the same layout.
 *
 * <p>A turn is {@code prefix + message}, turns are joined by {@code separator}. In prefixes {@code {{char}}} is the
 * character's (model's) name and {@code {{user}}} the user's display name. Masking: a trained turn masks its prefix
 * without the prefix's trailing whitespace, and trains that whitespace, the message and the separator after it (so
 * the model learns to end its turn); an untrained turn is masked with the separator after it; the final token 0 is
 * trained if the last turn is. An inference prompt therefore ends with the model's prefix, trailing whitespace
 * removed ("Assistant:", "&lt;|model|&gt;"), exactly where training starts to count.
 *
 * <p>Built in:
 * <ul>
 * <li>{@code world}: RWKV World chat, {@code System: ...\n\nUser: ...\n\n{{char}}: ...}; blank lines inside a message
 * collapse to one newline (a blank line ends a turn).</li>
 * <li>{@code metharme}: PygmalionAI's Metharme, {@code <|system|>...<|user|>...<|model|>...} with no separator; the
 * persona goes into the system turn as "Enter RP mode. Pretend to be {{char}} whose persona follows: ...".</li>
 * </ul>
 * A template file (properties syntax: {@code key=value}, {@code \n} escapes, {@code #} comments) sets {@code system},
 * {@code user}, {@code model} (prefixes), {@code separator}, {@code persona} (the system text of a character; must hold
 * {@code {{persona}}}), {@code train} (roles trained: a comma list of system, user, model; default model) and
 * {@code collapse_blank_lines} (true or false); a key it leaves out takes the world template's value.
 */
public final class ChatTemplate {
    /** Who speaks a turn. OTHER: a named speaker of a chat record (a narrator...), laid out as a user turn. */
    public enum Role { SYSTEM, USER, MODEL, OTHER }

    /** One turn: its role, the speaker's name ({{char}} / {{user}} in the prefix), the message as given. */
    public record Turn(Role role, String name, String message) { }

    public static final String CHAR = "{{char}}";
    public static final String USER = "{{user}}";
    public static final String PERSONA = "{{persona}}";

    // before the templates: their constructor uses them
    private static final Pattern CHAR_PLACEHOLDER = Pattern.compile("\\{\\{char}}", Pattern.CASE_INSENSITIVE);
    private static final Pattern USER_PLACEHOLDER = Pattern.compile("\\{\\{user}}", Pattern.CASE_INSENSITIVE);

    public static final ChatTemplate WORLD = new ChatTemplate("world", "System: ", USER + ": ", CHAR + ": ", "\n\n", PERSONA,
            EnumSet.of(Role.MODEL), true);
    public static final ChatTemplate METHARME = new ChatTemplate("metharme", "<|system|>", "<|user|>", "<|model|>", "",
            "Enter RP mode. Pretend to be " + CHAR + " whose persona follows:\n" + PERSONA
                    + "\n\nYou shall reply to the user while staying in character, and generate long responses.",
            EnumSet.of(Role.MODEL), false);

    private final String name;
    private final String systemPrefix, userPrefix, modelPrefix, separator, personaText;
    private final Set<Role> trained;
    private final boolean collapseBlankLines;

    public ChatTemplate(String name, String systemPrefix, String userPrefix, String modelPrefix, String separator, String personaText,
                        Set<Role> trained, boolean collapseBlankLines) {
        this.name = name;
        this.systemPrefix = systemPrefix;
        this.userPrefix = userPrefix;
        this.modelPrefix = modelPrefix;
        this.separator = separator;
        this.personaText = personaText;
        this.trained = trained.isEmpty() ? EnumSet.noneOf(Role.class) : EnumSet.copyOf(trained);
        if (trained.contains(Role.USER)) this.trained.add(Role.OTHER);
        this.collapseBlankLines = collapseBlankLines;
        if (!personaText.contains(PERSONA)) throw new IllegalArgumentException("template " + name + ": 'persona' must contain " + PERSONA);
        if (replyEnd("User").isEmpty()) {
            throw new IllegalArgumentException("template " + name + ": the separator and the start of the user prefix are both empty, so nothing marks"
                    + " where a reply ends");
        }
    }

    public String name() {
        return name;
    }

    public String separator() {
        return separator;
    }

    /** world, metharme, or a template file. */
    public static ChatTemplate parse(String spec) {
        String s = spec.strip();
        if (s.equalsIgnoreCase("world")) return WORLD;
        if (s.equalsIgnoreCase("metharme")) return METHARME;
        Path file = Path.of(s);
        if (!Files.exists(file)) {
            throw new IllegalArgumentException("--template: expected world, metharme or a template file, got '" + spec + "' (no such file)");
        }
        return fromFile(file);
    }

    private static final Set<String> KEYS = Set.of("system", "user", "model", "separator", "persona", "train", "collapse_blank_lines");

    /** Reads a template file (see the class comment); an unknown key or bad value names the file and key. */
    public static ChatTemplate fromFile(Path file) {
        Properties p = new Properties();
        try (Reader r = new java.io.InputStreamReader(Files.newInputStream(file),
                StandardCharsets.UTF_8.newDecoder().onMalformedInput(java.nio.charset.CodingErrorAction.REPORT))) {
            p.load(r);
        } catch (NoSuchFileException e) {
            throw new IllegalArgumentException("template file not found: " + file);
        } catch (CharacterCodingException e) {
            throw new IllegalArgumentException(file + ": not valid UTF-8 text");
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException(file + ": " + e.getMessage());
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read " + file + ": " + e.getMessage(), e);
        }
        for (String key : p.stringPropertyNames()) {
            if (!KEYS.contains(key)) {
                throw new IllegalArgumentException(file + ": unknown key '" + key + "' (expected system, user, model, separator, persona, train,"
                        + " collapse_blank_lines)");
            }
        }
        Set<Role> trained = EnumSet.noneOf(Role.class);
        for (String role : p.getProperty("train", "model").split(",")) {
            switch (role.strip().toLowerCase(Locale.ROOT)) {
                case "system" -> trained.add(Role.SYSTEM);
                case "user" -> trained.add(Role.USER);
                case "model" -> trained.add(Role.MODEL);
                case "" -> { }
                default -> throw new IllegalArgumentException(file + ": train: expected a comma list of system, user, model, got '" + role.strip() + "'");
            }
        }
        String collapse = p.getProperty("collapse_blank_lines", "true").strip().toLowerCase(Locale.ROOT);
        if (!collapse.equals("true") && !collapse.equals("false")) {
            throw new IllegalArgumentException(file + ": collapse_blank_lines: expected true or false, got '" + collapse + "'");
        }
        String name = file.getFileName().toString();
        try {
            return new ChatTemplate(name, p.getProperty("system", WORLD.systemPrefix), p.getProperty("user", WORLD.userPrefix),
                    p.getProperty("model", WORLD.modelPrefix), p.getProperty("separator", WORLD.separator),
                    p.getProperty("persona", WORLD.personaText), trained, collapse.equals("true"));
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException(file + ": " + e.getMessage().replace("template " + name + ": ", ""));
        }
    }

    /** A message as it goes into a turn: line ends normalized, trimmed, and (world) blank lines collapsed. */
    public String normalizeMessage(String message) {
        if (collapseBlankLines) return ChatTurns.normalizeMessage(message);
        String s = message.indexOf('\r') >= 0 ? message.replace("\r\n", "\n").replace('\r', '\n') : message;
        return s.strip();
    }

    /** The prefix of a turn with the names filled in. */
    public String prefix(Role role, String speaker) {
        return switch (role) {
            case SYSTEM -> systemPrefix;
            case MODEL -> fill(modelPrefix, speaker, speaker);
            case USER, OTHER -> fill(userPrefix, speaker, speaker);
        };
    }

    /** The whitespace a model turn's prefix ends with (world: one space): trained, the start of every reply. */
    public String replyLead(String charName) {
        String prefix = prefix(Role.MODEL, charName);
        return prefix.substring(prefix.stripTrailing().length());
    }

    /** The system text of a character: the template's persona text with the persona, {{char}} and {{user}} filled in. */
    public String personaSystemText(String persona, String charName, String userName) {
        String s = personaText.replace(PERSONA, persona);
        return fill(s, charName, userName);
    }

    /** {{char}} and {{user}} (any case) replaced by the names. */
    public static String fill(String text, String charName, String userName) {
        String s = CHAR_PLACEHOLDER.matcher(text).replaceAll(Matcher.quoteReplacement(charName));
        return USER_PLACEHOLDER.matcher(s).replaceAll(Matcher.quoteReplacement(userName));
    }

    public boolean trains(Role role) {
        return trained.contains(role);
    }

    /**
     * Renders turns (messages already normalized) with this template's mask; trainEverything (--train-on all) trains
     * every token. An empty list is a bad record.
     */
    public RenderedDocument render(List<Turn> turns, boolean trainEverything) {
        if (turns.isEmpty()) throw new RecordException("empty conversation");
        RenderedDocument doc = new RenderedDocument();
        for (int i = 0; i < turns.size(); i++) {
            Turn t = turns.get(i);
            String sep = i + 1 < turns.size() ? separator : "";
            String prefix = prefix(t.role(), t.name());
            if (trainEverything) {
                doc.add(prefix + t.message() + sep, true);
            } else if (trains(t.role())) {
                String head = prefix.stripTrailing();
                doc.add(head, false);
                doc.add(prefix.substring(head.length()) + t.message() + sep, true);
            } else {
                doc.add(prefix + t.message() + sep, false);
            }
        }
        doc.endTrained(trainEverything || trains(turns.get(turns.size() - 1).role()));
        return doc;
    }

    // ---- inference: the text a session feeds, turn by turn ----

    /**
     * What ends a reply at inference: the separator plus the user prefix up to its {{user}} ("\n\n" for world,
     * "&lt;|user|&gt;" for metharme). Generation stops there; the state has then read it.
     */
    public String replyEnd(String userName) {
        int at = userPrefix.toLowerCase(Locale.ROOT).indexOf(USER);
        String head = at < 0 ? userPrefix : userPrefix.substring(0, at);
        return separator + fill(head, "", userName);
    }

    /** The start of a conversation with an optional system text: fed before the first user turn. */
    public String conversationStart(String system, String userName) {
        String end = replyEnd(userName);
        String start = system == null || system.isBlank() ? "" : systemPrefix + normalizeMessage(system) + separator;
        // the state after the start is as after a reply: it has read what replyEnd reads beyond the separator
        return start + end.substring(separator.length());
    }

    /**
     * The prompt of one user message, fed after conversationStart or after a reply with its reply end: the rest of the
     * user turn, the separator and the model's prefix without trailing whitespace.
     */
    public String turnPrompt(String message, String userName, String charName) {
        String userTurn = separator + prefix(Role.USER, userName);
        String rest = userTurn.substring(replyEnd(userName).length());
        return rest + normalizeMessage(message) + separator + prefix(Role.MODEL, charName).stripTrailing();
    }

    /** Every setting, for run records. */
    public Map<String, String> describe() {
        Map<String, String> m = new LinkedHashMap<>();
        m.put("name", name);
        m.put("system", systemPrefix);
        m.put("user", userPrefix);
        m.put("model", modelPrefix);
        m.put("separator", separator);
        m.put("persona", personaText);
        List<String> roles = new ArrayList<>();
        for (Role r : trained) if (r != Role.OTHER) roles.add(r.name().toLowerCase(Locale.ROOT));
        m.put("train", String.join(",", roles));
        m.put("collapse_blank_lines", Boolean.toString(collapseBlankLines));
        return m;
    }

    @Override
    public String toString() {
        return name;
    }
}
