# (3) Phoenix Channels (zerocam `protocol = "phoenix"`, serializer V2): the
# camera joins "camera:<id>" and pushes each JPEG as a binary "frame" event;
# the channel republishes it on "frames:<id>" (viewer_channel.ex shows it to
# browsers, on any node of the cluster, through Phoenix.PubSub).
#
# endpoint.ex (no check_origin: false: the camera sends no Origin, which
# Phoenix lets through with the check on):
#   socket "/camera_socket", MyAppWeb.CameraUserSocket, websocket: true, longpoll: false
#   # Phoenix >= 1.8, for zerocam's --auth-subprotocol (token in a header,
#   # not in the URL), add `auth_token: true` to that line. Phoenix 1.7
#   # ignores that option without a word: there, keep the query token.
# zerocam: url = "wss://example.com/camera_socket", protocol = "phoenix", token = "…"
#   (the camera adds /websocket?vsn=2.0.0&token=…, or no token with
#   --auth-subprotocol, and joins "camera:<camera id>")
defmodule MyAppWeb.CameraUserSocket do
  use Phoenix.Socket

  channel "camera:*", MyAppWeb.CameraChannel

  @impl true
  # Phoenix >= 1.8 with `auth_token: true` and zerocam's --auth-subprotocol:
  # the token arrives here (connect_info gets :auth_token automatically).
  def connect(_params, socket, %{auth_token: token}) when is_binary(token),
    do: check(token, socket)

  # Otherwise the query string's ?token=… (what Phoenix 1.7 sockets see:
  # they cannot read the Authorization header).
  def connect(%{"token" => token}, socket, _connect_info), do: check(token, socket)
  def connect(_params, _socket, _connect_info), do: :error

  defp check(token, socket) do
    if Plug.Crypto.secure_compare(token, Application.fetch_env!(:my_app, :camera_token)),
      do: {:ok, socket},
      else: :error
  end

  @impl true
  def id(_socket), do: nil
end

defmodule MyAppWeb.CameraChannel do
  # log_handle_in: false: at debug level Phoenix logs every push, two lines
  # per frame with a dump of the JPEG.
  use Phoenix.Channel, log_handle_in: false

  @impl true
  def join("camera:" <> id, payload, socket) do
    # payload: %{"token" => …, "camera" => …, "version" => …, "width" => …,
    #            "height" => …, "format" => …, "fps" => …, "relay" => …}
    # A pause is per connection: after a (re)join, re-send the one the
    # server still wants (MyApp.CameraControl, camera_control.ex).
    if MyApp.CameraControl.paused?(id), do: send(self(), :pause_again)
    {:ok, assign(socket, camera: id, hello: Map.delete(payload, "token"))}
  end

  @impl true
  def handle_in("frame", {:binary, jpeg}, socket) do
    # "frames:<id>", not this channel's own topic: raw PubSub messages on
    # "camera:<id>" would reach this process as unexpected messages.
    Phoenix.PubSub.broadcast(MyApp.PubSub, "frames:" <> socket.assigns.camera,
      {:zerocam_frame, socket.assigns.camera, jpeg})

    # Reply: each reply is an ack, and zerocam then keeps at most `window`
    # frames in flight. Without replies nothing bounds the channel's mailbox:
    # with a handle_in slower than the camera, latency grows without end
    # (p50 10 s after 30 s in a trial, against p99 268 ms with replies).
    {:reply, :ok, socket}
  end

  def handle_in("stats", stats, socket) do
    Phoenix.PubSub.broadcast(MyApp.PubSub, "frames:" <> socket.assigns.camera,
      {:zerocam_stats, socket.assigns.camera, stats})

    {:noreply, socket}
  end

  # The camera's answer to set/pause/resume: what it now actually uses.
  def handle_in("settings", _settings, socket), do: {:noreply, socket}

  @impl true
  def handle_info(:pause_again, socket) do
    push(socket, "pause", %{})
    {:noreply, socket}
  end

  # Steer the camera with MyApp.CameraControl.pause/resume/set: broadcasts on
  # the channel's topic ("camera:porch", "pause" | "resume" | "set") reach the
  # camera as they are, from anywhere in the cluster.
end
