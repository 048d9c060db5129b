# (3) Phoenix Channels (zerocam `protocol = "phoenix"`, serializer V2): the
# camera joins "camera:<id>" and pushes each JPEG as a binary "frame" event.
#
# endpoint.ex:
#   socket "/camera_socket", MyAppWeb.CameraUserSocket, websocket: [check_origin: false]
#   socket "/live_socket", MyAppWeb.ViewerSocket, websocket: true   # browsers: keep check_origin
# zerocam: url = "wss://example.com/camera_socket", protocol = "phoenix", token = "…"
#   (the camera adds /websocket?vsn=2.0.0&token=… and joins "camera:<camera id>")
defmodule MyAppWeb.CameraUserSocket do
  use Phoenix.Socket

  channel "camera:*", MyAppWeb.CameraChannel

  @impl true
  def connect(%{"token" => token}, socket, _connect_info) do
    if Plug.Crypto.secure_compare(token, Application.fetch_env!(:my_app, :camera_token)),
      do: {:ok, socket},
      else: :error
  end

  def connect(_params, _socket, _connect_info), do: :error

  @impl true
  def id(_socket), do: nil
end

defmodule MyAppWeb.CameraChannel do
  use Phoenix.Channel

  @impl true
  def join("camera:" <> _id = topic, payload, socket) do
    # payload: %{"token" => …, "camera" => …, "width" => …, "height" => …, "fps" => …}
    {:ok, assign(socket, topic: topic, hello: Map.delete(payload, "token"))}
  end

  @impl true
  def handle_in("frame", {:binary, jpeg}, socket) do
    # Viewers subscribe to "view:" <> topic (see viewer_channel.ex).
    MyAppWeb.Endpoint.broadcast("view:" <> socket.assigns.topic, "frame", {:binary, jpeg})
    # Replying turns on zerocam's in-flight window (each reply is an ack);
    # {:noreply, socket} works too, without the window.
    {:reply, :ok, socket}
  end

  def handle_in("stats", stats, socket) do
    MyAppWeb.Endpoint.broadcast("view:" <> socket.assigns.topic, "stats", stats)
    {:noreply, socket}
  end

  # Steer the camera: MyAppWeb.Endpoint.broadcast("camera:porch", "pause", %{})
  # or "set" with %{fps: 5, quality: 70}; broadcasts reach the camera as is.
end

defmodule MyAppWeb.ViewerChannel do
  use Phoenix.Channel

  # On the browsers' socket: channel "view:camera:*", MyAppWeb.ViewerChannel
  @impl true
  def join("view:camera:" <> _id, _params, socket), do: {:ok, socket}
end
