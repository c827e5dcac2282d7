package ai.longrwkv.datasets.build;

import com.google.gson.JsonArray;
import com.google.gson.JsonObject;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The input record formats of `data build` and how each becomes a document (text pieces with loss flags, then token
 * 0). Every document ends with token 0.
 *
 * <ul>
 * <li>{@code text}: jsonl {"text": "..."}, or a .txt file = one document. Everything trained, token 0 included.
 * The text is taken as it is.</li>
 * <li>{@code prompt-completion}: jsonl {"prompt": "...", "completion": "..."}: prompt + completion concatenated as
 * they are (add any separator to the data yourself), prompt masked, completion and token 0 trained.</li>
 * <li>{@code chat}: jsonl {"messages": [{"role": ..., "content": ...}, ...]} in the World chat layout of
 * {@link ChatTurns}. Roles system, user (or human), assistant (or gpt, model, bot, char; any case) print as System,
 * User, Assistant; any other role is a named speaker printed as written and not trained; an optional "name" on a message replaces the printed speaker (its role still
 * decides the masking). Trained by default: assistant turns only.</li>
 * <li>{@code pippa}: PygmalionAI's PIPPA records (bot_name, bot_description, bot_definitions, bot_greeting,
 * conversation = [{message, is_human}]). {{char}} becomes the bot's name and {{user}} becomes "User" (any case).
 * A System turn (masked) holds the description and then the definitions, when either is non-empty. Human turns
 * are "User:" (masked), bot turns "{bot_name}:" (trained). If the greeting is non-empty and the conversation does
 * not already start with it as a bot message, it is added as the first bot turn.</li>
 * </ul>
 * With train-on all every token is trained in every format.
 */
public enum InputFormat {
    TEXT("text"),
    CHAT("chat"),
    PIPPA("pippa"),
    PROMPT_COMPLETION("prompt-completion");

    /** The name on the command line. */
    public final String cliName;

    InputFormat(String cliName) {
        this.cliName = cliName;
    }

    public static InputFormat parse(String name) {
        for (InputFormat f : values()) if (f.cliName.equalsIgnoreCase(name.trim())) return f;
        throw new IllegalArgumentException("unknown input format '" + name + "': expected text, chat, pippa or prompt-completion");
    }

    /** Renders one parsed jsonl record; a record that does not fit the format throws {@link RecordException}. */
    public RenderedDocument render(JsonObject record, boolean trainAll) {
        return switch (this) {
            case TEXT -> renderText(Json.requiredString(record, "text", ""));
            case PROMPT_COMPLETION -> renderPromptCompletion(record, trainAll);
            case CHAT -> renderChat(record, trainAll);
            case PIPPA -> renderPippa(record, trainAll);
        };
    }

    /** Parses a jsonl line and renders it (what the builder does for each line). */
    public RenderedDocument renderLine(String jsonLine, boolean trainAll) {
        return render(Json.parseObject(jsonLine), trainAll);
    }

    /** A plain-text document: all trained. */
    public static RenderedDocument renderText(String text) {
        if (text.isEmpty()) throw new RecordException("empty text");
        return new RenderedDocument().add(text, true).endTrained(true);
    }

    private static RenderedDocument renderPromptCompletion(JsonObject record, boolean trainAll) {
        String prompt = Json.requiredString(record, "prompt", "");
        String completion = Json.requiredString(record, "completion", "");
        if (completion.isEmpty()) throw new RecordException("empty completion: nothing to train on");
        return new RenderedDocument().add(prompt, trainAll).add(completion, true).endTrained(true);
    }

    private static RenderedDocument renderChat(JsonObject record, boolean trainAll) {
        JsonArray messages = Json.requiredArray(record, "messages", "");
        if (messages.isEmpty()) throw new RecordException("empty conversation: 'messages' is an empty list");
        List<ChatTurns.Turn> turns = new ArrayList<>(messages.size());
        for (int i = 0; i < messages.size(); i++) {
            String where = "message " + i + ": ";
            JsonObject m = Json.object(messages.get(i), where);
            String role = Json.requiredString(m, "role", where);
            String content = ChatTurns.normalizeMessage(Json.requiredString(m, "content", where));
            if (content.isEmpty()) throw new RecordException(where + "empty content");
            String name = Json.optionalString(m, "name", where);
            String roleKey = role.strip().toLowerCase(Locale.ROOT);
            boolean assistant = ASSISTANT_ROLES.contains(roleKey);
            String speaker = assistant ? "Assistant" : USER_ROLES.contains(roleKey) ? "User" : roleKey.equals("system") ? "System"
                    : ChatTurns.normalizeSpeaker(role, where + "role");
            if (!name.isBlank()) speaker = ChatTurns.normalizeSpeaker(name, where + "name");
            turns.add(new ChatTurns.Turn(speaker, content, trainAll || assistant));
        }
        return ChatTurns.render(turns, trainAll);
    }

    /**
     * Chat roles of the model's turns (trained, printed "Assistant"): OpenAI's assistant, ShareGPT's gpt, Gemini's
     * model, and the bot / char of roleplay logs. Any case.
     */
    public static final java.util.Set<String> ASSISTANT_ROLES = java.util.Set.of("assistant", "gpt", "model", "bot", "char");
    /** Chat roles of the user's turns (masked, printed "User"): user, ShareGPT's human. */
    public static final java.util.Set<String> USER_ROLES = java.util.Set.of("user", "human");

    private static final Pattern CHAR_PLACEHOLDER = Pattern.compile("\\{\\{char}}", Pattern.CASE_INSENSITIVE);
    private static final Pattern USER_PLACEHOLDER = Pattern.compile("\\{\\{user}}", Pattern.CASE_INSENSITIVE);

    /** The speaker name of human turns in PIPPA documents, and what {{user}} becomes. */
    public static final String PIPPA_USER = "User";

    private static RenderedDocument renderPippa(JsonObject record, boolean trainAll) {
        String botName = ChatTurns.normalizeSpeaker(Json.requiredString(record, "bot_name", ""), "bot_name");
        String description = pippaText(Json.optionalString(record, "bot_description", ""), botName);
        String definitions = pippaText(Json.optionalString(record, "bot_definitions", ""), botName);
        String greeting = pippaText(Json.optionalString(record, "bot_greeting", ""), botName);
        JsonArray conversation = Json.requiredArray(record, "conversation", "");
        if (conversation.isEmpty()) throw new RecordException("empty conversation: 'conversation' is an empty list");

        List<ChatTurns.Turn> turns = new ArrayList<>(conversation.size() + 2);
        String persona = description.isEmpty() ? definitions : definitions.isEmpty() ? description : description + "\n" + definitions;
        if (!persona.isEmpty()) turns.add(new ChatTurns.Turn("System", persona, trainAll));
        for (int i = 0; i < conversation.size(); i++) {
            String where = "conversation[" + i + "]: ";
            JsonObject m = Json.object(conversation.get(i), where);
            String message = pippaText(Json.requiredString(m, "message", where), botName);
            boolean human = Json.requiredBoolean(m, "is_human", where);
            if (message.isEmpty()) throw new RecordException(where + "empty message");
            if (i == 0 && !greeting.isEmpty() && (human || !message.equals(greeting))) {
                turns.add(new ChatTurns.Turn(botName, greeting, true));
            }
            turns.add(human ? new ChatTurns.Turn(PIPPA_USER, message, trainAll) : new ChatTurns.Turn(botName, message, true));
        }
        return ChatTurns.render(turns, trainAll);
    }

    private static String pippaText(String text, String botName) {
        String s = CHAR_PLACEHOLDER.matcher(text).replaceAll(Matcher.quoteReplacement(botName));
        s = USER_PLACEHOLDER.matcher(s).replaceAll(PIPPA_USER);
        return ChatTurns.normalizeMessage(s);
    }
}
