package ai.longrwkv.datasets.synth;

import ai.longrwkv.datasets.build.ChatTemplate;
import ai.longrwkv.datasets.build.InputFormat;
import ai.longrwkv.datasets.io.InputFiles;
import ai.longrwkv.datasets.io.Utf8;
import com.google.gson.JsonArray;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;

import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.SplittableRandom;

/**
 * The filler conversation of the persona task: exchanges (a user message, then the character's reply) that state no
 * fact the test asks about. Either generated from sentence templates with random slots ({@link #synthetic()}), or
 * taken from a chat dataset file: chat jsonl ({"messages": [{role, content}]}) or PIPPA jsonl ({"conversation":
 * [{message, is_human}]}), where every user message followed by a model message is one exchange. {{char}} and
 * {{user}} in the file's messages become the sample's names.
 */
public final class FillerChats {
    /** One exchange; the messages may hold {{char}} / {{user}}. */
    public record Exchange(String user, String model) { }

    private final String name;
    private final List<Exchange> exchanges;

    private FillerChats(String name, List<Exchange> exchanges) {
        this.name = name;
        this.exchanges = exchanges;
    }

    public String name() {
        return name;
    }

    /** Exchanges in the file (or none: synthetic). */
    public int size() {
        return exchanges.size();
    }

    /** The generated small talk (needs no data). */
    public static FillerChats synthetic() {
        return new FillerChats("synthetic", List.of());
    }

    /** Largest filler file read (256 MB): the filler repeats as needed. */
    public static final long MAX_FILE_BYTES = 256L << 20;

    /** Exchanges of a chat or PIPPA jsonl file; a line that is not one names the file and line. */
    public static FillerChats fromFile(Path file) {
        InputFiles.require(file, "filler chats", "filler chat file not found: " + file);
        byte[] bytes = InputFiles.readAtMost(file, MAX_FILE_BYTES, "filler chats");
        Utf8.Validator v = new Utf8.Validator();
        try {
            v.feed(bytes, 0, bytes.length);
            v.finish();
        } catch (Utf8.InvalidUtf8Exception e) {
            throw new IllegalArgumentException(file + " line " + e.line() + ": " + e.getMessage());
        }
        String[] lines = new String(bytes, StandardCharsets.UTF_8).split("\n", -1);
        List<Exchange> out = new ArrayList<>();
        for (int i = 0; i < lines.length; i++) {
            String line = lines[i].strip();
            if (line.isEmpty()) continue;
            String where = file + " line " + (i + 1) + ": ";
            JsonObject o;
            try {
                JsonElement e = JsonParser.parseString(line);
                if (!e.isJsonObject()) throw new IllegalArgumentException(where + "expected a JSON object, found " + line.charAt(0));
                o = e.getAsJsonObject();
            } catch (com.google.gson.JsonParseException e) {
                throw new IllegalArgumentException(where + "not valid JSON");
            }
            List<String[]> turns = new ArrayList<>();   // {role "user" | "model", text}
            try {
                readTurns(o, where, turns);
            } catch (IllegalStateException | UnsupportedOperationException | ClassCastException e) {
                throw new IllegalArgumentException(where + "a field of the wrong type (role, content and message are strings, is_human a boolean)");
            }
            for (int t = 0; t + 1 < turns.size(); t++) {
                if (turns.get(t)[0].equals("user") && turns.get(t + 1)[0].equals("model")
                        && !turns.get(t)[1].isBlank() && !turns.get(t + 1)[1].isBlank()) {
                    out.add(new Exchange(turns.get(t)[1], turns.get(t + 1)[1]));
                    t++;
                }
            }
        }
        if (out.isEmpty()) throw new IllegalArgumentException(file + ": no user message followed by a model message (nothing to use as filler)");
        return new FillerChats(file.toString(), List.copyOf(out));
    }

    /** The turns of one chat or PIPPA record as {"user" | "model" | "other", text}. */
    private static void readTurns(JsonObject o, String where, List<String[]> turns) {
        if (o.has("messages") && o.get("messages").isJsonArray()) {
            for (JsonElement m : o.getAsJsonArray("messages")) {
                if (!m.isJsonObject() || !m.getAsJsonObject().has("role") || !m.getAsJsonObject().has("content")) {
                    throw new IllegalArgumentException(where + "a message without 'role' and 'content'");
                }
                String role = m.getAsJsonObject().get("role").getAsString().strip().toLowerCase(Locale.ROOT);
                String content = m.getAsJsonObject().get("content").getAsString();
                turns.add(new String[]{InputFormat.ASSISTANT_ROLES.contains(role) ? "model" : InputFormat.USER_ROLES.contains(role) ? "user" : "other",
                        content});
            }
        } else if (o.has("conversation") && o.get("conversation").isJsonArray()) {
            for (JsonElement m : o.getAsJsonArray("conversation")) {
                if (!m.isJsonObject() || !m.getAsJsonObject().has("message") || !m.getAsJsonObject().has("is_human")) {
                    throw new IllegalArgumentException(where + "a conversation entry without 'message' and 'is_human'");
                }
                boolean human = m.getAsJsonObject().get("is_human").getAsBoolean();
                turns.add(new String[]{human ? "user" : "model", m.getAsJsonObject().get("message").getAsString()});
            }
        } else {
            throw new IllegalArgumentException(where + "expected a chat record ('messages') or a PIPPA record ('conversation')");
        }
    }

    /** The next filler exchange: a random one of the file's, or a generated one. */
    public Exchange next(SplittableRandom rng) {
        if (!exchanges.isEmpty()) return exchanges.get(rng.nextInt(exchanges.size()));
        return generated(rng);
    }

    /** The exchange with the template's normalization and the names filled in. */
    static Exchange render(Exchange e, ChatTemplate template, String charName, String userName) {
        return new Exchange(template.normalizeMessage(ChatTemplate.fill(e.user(), charName, userName)),
                template.normalizeMessage(ChatTemplate.fill(e.model(), charName, userName)));
    }

    private static final String[] FOODS = "apple pie|soup|fresh bread|noodles|rice cakes|cheese|honey|plum jam|roasted nuts|tea".split("\\|");
    private static final String[] WEATHER = "rainy|sunny|windy|foggy|cold|warm|grey|bright".split("\\|");
    private static final String[] TOPICS = "old ships|the stars|mountain birds|a lost city|clocks|the sea|gardens|ancient kings".split("\\|");

    /**
     * Small talk, user line and reply, with slots filled at random: {noun}, {adj}, {food}, {weather}, {topic}. A slot
     * repeated in an exchange gets the same word in both lines. None states a fact the test asks about.
     */
    static final String[][] EXCHANGES = {
            {"What did you do today?", "I spent the morning near the {noun}."},
            {"Tell me about the {noun}.", "It is old and a little {adj}. Nobody remembers who built it."},
            {"Do you like {food}?", "I think {food} is wonderful."},
            {"The weather is {weather} today.", "It is {weather} more often than not."},
            {"I read a book about {topic}.", "A book about {topic}? Tell me what you liked in it."},
            {"Let's walk to the {noun} later.", "We could go after lunch, if you like."},
            {"Have you ever seen a {adj} {noun}?", "Once. It came to the village in winter and left in spring."},
            {"I'm a bit tired today.", "Rest a little. There is no hurry."},
            {"What are you thinking about?", "Mostly about {topic}, to be honest."},
            {"Can you tell me a story?", "Once, a {adj} {noun} came to the village. Nobody knew where from."},
            {"That {noun} looks {adj}.", "*nods slowly* It does."},
            {"I made some {food} this morning.", "*smiles* That sounds lovely."},
            {"Do you hear that noise?", "Yes, I heard it too. Probably the wind."},
            {"Where should we go next?", "Let me think. The {noun} by the river, maybe?"},
            {"*sits down next to you*", "*moves over to make room*"},
            {"What's your favourite season?", "Autumn, when everything turns {adj}."},
            {"I found a {adj} {noun} on the road.", "*laughs* You always find the strangest things."},
    };

    private static Exchange generated(SplittableRandom rng) {
        String[] pair = EXCHANGES[rng.nextInt(EXCHANGES.length)];
        java.util.Map<String, String> slots = new java.util.HashMap<>();
        return new Exchange(fillSlots(pair[0], rng, slots), fillSlots(pair[1], rng, slots));
    }

    private static String fillSlots(String line, SplittableRandom rng, java.util.Map<String, String> slots) {
        StringBuilder out = new StringBuilder();
        int i = 0;
        while (i < line.length()) {
            int open = line.indexOf('{', i);
            if (open < 0) {
                out.append(line, i, line.length());
                break;
            }
            int close = line.indexOf('}', open);
            out.append(line, i, open);
            String slot = line.substring(open + 1, close);
            out.append(slots.computeIfAbsent(slot, k -> switch (k) {
                case "noun" -> Words.NOUNS[rng.nextInt(Words.NOUNS.length)];
                case "adj" -> Words.ADJECTIVES[rng.nextInt(Words.ADJECTIVES.length)];
                case "food" -> FOODS[rng.nextInt(FOODS.length)];
                case "weather" -> WEATHER[rng.nextInt(WEATHER.length)];
                case "topic" -> TOPICS[rng.nextInt(TOPICS.length)];
                default -> throw new IllegalStateException("slot " + k);
            }));
            i = close + 1;
        }
        return out.toString();
    }
}
