package ai.longrwkv.eval;

import ai.longrwkv.core.model.Rwkv5Model;
import ai.longrwkv.core.model.RwkvState;
import ai.longrwkv.core.tokenizer.Tokenizer;
import ai.longrwkv.datasets.build.ChatTemplate;

import java.util.List;
import java.util.function.Consumer;

/**
 * A conversation laid out by a {@link ChatTemplate} (the one `data build --template` trains with), by default the
 * RWKV World chat format, the format RWKV World models and roleplay finetunes are trained on:
 * <pre>
 * System: {system}\n\n                (optional)
 * User: {message}\n\n
 * Assistant: {reply}\n\n
 * User: ...
 * </pre>
 * The recurrent state is the whole memory of the conversation: each turn feeds only the new text, so a turn costs the
 * same whether the conversation is 10 or 100,000 tokens long. A reply ends at the blank line that ends a turn (or at
 * token 0, or the token limit; the state then gets the blank line anyway, so the next turn starts in format). With
 * another template a reply ends at the template's reply end ({@link ChatTemplate#replyEnd}: "&lt;|user|&gt;" for metharme).
 */
public final class ChatSession implements AutoCloseable {
    /** What ends a turn in the World format. */
    public static final String TURN_END = "\n\n";

    private final ChatTemplate template;
    private final String replyEnd;

    private final Rwkv5Model model;
    private final Tokenizer tokenizer;
    private final String userName, botName;
    private final Sampler sampler;
    private final int maxTokens;
    private final int chunkLen;
    /** The state at the start of the conversation (after the system text): /reset returns here. */
    private final RwkvState start;
    private final RwkvState state;

    /**
     * @param initial the state to start from (zeros or a tuned state); not modified or kept
     * @param system  system text fed first as "System: ...", or null
     */
    public ChatSession(Rwkv5Model model, Tokenizer tokenizer, RwkvState initial, String userName, String botName, String system,
                       Sampler sampler, int maxTokens, int chunkLen) {
        this(model, tokenizer, initial, ChatTemplate.WORLD, userName, botName, system, sampler, maxTokens, chunkLen);
    }

    /** A session in the layout of {@code template}. */
    public ChatSession(Rwkv5Model model, Tokenizer tokenizer, RwkvState initial, ChatTemplate template, String userName, String botName,
                       String system, Sampler sampler, int maxTokens, int chunkLen) {
        if (tokenizer.vocabSize() != model.config().vocabSize()) {
            throw new IllegalArgumentException("the tokenizer's vocabulary (" + tokenizer.vocabSize() + ") does not match the model's ("
                    + model.config().vocabSize() + "): use --tokenizer bytes for vocab 256, world:PATH for 65536");
        }
        this.model = model;
        this.tokenizer = tokenizer;
        this.userName = userName;
        this.botName = botName;
        this.sampler = sampler;
        this.maxTokens = maxTokens;
        this.chunkLen = chunkLen;
        this.template = template;
        this.replyEnd = template.replyEnd(userName);
        this.state = initial.copy(model.backend());
        feed(template.conversationStart(system, userName));
        this.start = state.copy(model.backend());
    }

    /** The prompt a user message becomes (World: "User: {message}\n\nAssistant:"). */
    public String turnPrompt(String message) {
        return template.turnPrompt(message, userName, botName);
    }

    /**
     * One exchange: feeds the user's message, generates the reply (streamed to onText as it comes) and keeps the state
     * for the next turn. Returns the reply without its leading space and the blank line.
     */
    public Generator.Result turn(String message, Consumer<String> onText) {
        float[] logits = Prefill.run(model, tokenizer.encode(turnPrompt(message)), state, chunkLen, null);
        Generator.Result r = Generator.generate(tokenizer, t -> model.step(t, state), logits, sampler, maxTokens, List.of(replyEnd),
                onText);
        if (r.reason() != Generator.StopReason.STOP_STRING) feed(replyEnd);
        return r;
    }

    /** Forgets the conversation (back to the state after the system text). */
    public void reset() {
        state.copyFrom(model.backend(), start);
    }

    /** The current state (owned by the session). */
    public RwkvState state() {
        return state;
    }

    private void feed(String text) {
        int[] tokens = tokenizer.encode(text);
        if (tokens.length > 0) Prefill.run(model, tokens, state, chunkLen, null);
    }

    /**
     * A blank line inside a message would end the turn early in this format: messages keep single newlines only
     * (as ChatRWKV does); surrounding whitespace is dropped.
     */
    static String normalize(String message) {
        return ChatTemplate.WORLD.normalizeMessage(message);
    }

    @Override
    public void close() {
        start.close();
        state.close();
    }
}
