# (1) A bare Phoenix.Socket.Transport for zerocam's `raw` dialect: each binary
# message is one JPEG; it is relayed with Phoenix.PubSub on "frames:<id>" and
# acked with 0x0A so the camera bounds what is in flight.
#
# endpoint.ex (no check_origin: false needed: the camera sends no Origin,
# and Phoenix lets an origin-less request through with the check on):
#   socket "/ingest", MyAppWeb.CameraSocket, websocket: [path: ""], longpoll: false
# zerocam (protocol = "raw"): url = "wss://example.com/ingest?camera=porch", token = "…"
defmodule MyAppWeb.CameraSocket do
  @behaviour Phoenix.Socket.Transport
  require Logger

  @ack <<10>>

  @impl true
  def child_spec(_opts), do: :ignore

  @impl true
  def connect(%{params: params}) do
    camera = params["camera"]

    # The camera sends its token as ?token=… (and as Authorization: Bearer).
    with true <- is_binary(camera),
         true <- Plug.Crypto.secure_compare(params["token"] || "", token()) do
      {:ok, %{camera: camera}}
    else
      _ -> :error
    end
  end

  @impl true
  def init(state) do
    # Commands from MyApp.CameraControl (camera_control.ex).
    Phoenix.PubSub.subscribe(MyApp.PubSub, "camera_commands:" <> state.camera)
    # A pause is per connection: re-send the one the server still wants.
    if MyApp.CameraControl.paused?(state.camera),
      do: send(self(), {:camera_command, %{type: "pause"}})

    {:ok, state}
  end

  @impl true
  def handle_in({jpeg, opcode: :binary}, state) do
    # "frames:<id>", not the Channel topic "camera:<id>": a Channel process on
    # that topic would get these as unexpected messages, one warning a frame.
    Phoenix.PubSub.broadcast(MyApp.PubSub, "frames:" <> state.camera, {:zerocam_frame, state.camera, jpeg})
    {:reply, :ok, {:binary, @ack}, state}
  end

  def handle_in({text, opcode: :text}, state) do
    # hello, heartbeat, stats: JSON with a "type" field.
    case Jason.decode(text) do
      {:ok, %{"type" => "stats"} = stats} ->
        Phoenix.PubSub.broadcast(MyApp.PubSub, "frames:" <> state.camera, {:zerocam_stats, state.camera, stats})

      _ ->
        :ok
    end

    {:ok, state}
  end

  # MyApp.CameraControl.pause/resume/set reach the camera through here.
  @impl true
  def handle_info({:camera_command, cmd}, state) do
    {:push, {:text, Jason.encode!(cmd)}, state}
  end

  def handle_info(_msg, state), do: {:ok, state}

  @impl true
  def terminate(_reason, _state), do: :ok

  defp token, do: Application.fetch_env!(:my_app, :camera_token)
end
