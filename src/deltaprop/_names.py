"""The one table of activation and loss names, and the integer codes the native core uses.

The codes must match ``enum class Activation`` and ``enum class Loss`` in
``csrc/deltaprop/activations.hpp`` and ``csrc/deltaprop/losses.hpp``.
"""

ACTIVATIONS = ("identity", "sigmoid", "tanh", "relu", "leaky_relu", "softmax", "elu", "softplus")
LOSSES = ("quadratic", "binary_crossentropy", "categorical_crossentropy", "huber")

ACTIVATION_CODES = {name: code for code, name in enumerate(ACTIVATIONS)}
LOSS_CODES = {name: code for code, name in enumerate(LOSSES)}

# Activations that only make sense on the output layer (their Jacobian is not diagonal).
OUTPUT_ONLY_ACTIVATIONS = frozenset({"softmax"})

# Losses that are only defined for one kind of output; the pair has an exact fused output
# error D_L = A_L - Y.
REQUIRED_OUTPUT = {
    "binary_crossentropy": "sigmoid",
    "categorical_crossentropy": "softmax",
}

CLASSIFICATION_LOSSES = frozenset(REQUIRED_OUTPUT)

LEAKY_RELU_SLOPE = 0.01  # PyTorch's default negative slope


def default_output(loss, hidden_activation):
    """The output activation used when ``output=None``."""
    return REQUIRED_OUTPUT.get(loss, hidden_activation)
